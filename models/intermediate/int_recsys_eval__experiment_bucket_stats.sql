{#- The cumulative per-variant sums of the over-time read-out: one row per variant x time bucket (every
    bucket holding a request of any arm, for every observed arm), each row summing every
    request exposed up to the end of its bucket (the same population as the global scope of
    int_recsys_eval__experiment_variant_stats; requests without a timestamp are left out). -#}
{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set sequential = recsys_eval.experiment_sequential_config() %}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

bucketed as (

    -- each request in the time bucket of its exposure
    select
        variant,
        unit_id,
        is_user_unit,
        click_count,
        conversion_count,
        {{ recsys_eval.experiment_bucket_start_epoch_us('exposed_at_epoch_us', sequential.bucket) }}
            as bucket_start_epoch_us

    from experiment_requests
    where exposed_at_epoch_us is not null

),

unit_bucket_tallies as (

    -- one row per variant x unit x bucket in which the unit had requests: that bucket's tallies
    select
        variant,
        unit_id,
        is_user_unit,
        bucket_start_epoch_us,
        count(*) as requests,
        sum(click_count) as clicks,
        sum(conversion_count) as conversions

    from bucketed
    group by
        variant,
        unit_id,
        is_user_unit,
        bucket_start_epoch_us

),

unit_bucket_previous as (

    -- the unit's tallies before this bucket (0 in its first bucket)
    select
        *,
        case
            when row_number() over (
                partition by variant, unit_id, is_user_unit order by bucket_start_epoch_us
            ) = 1 then 1
            else 0
        end as is_first_bucket,
        coalesce(sum(requests) over (
            partition by variant, unit_id, is_user_unit order by bucket_start_epoch_us
            rows between unbounded preceding and 1 preceding
        ), 0) as previous_requests,
        coalesce(sum(clicks) over (
            partition by variant, unit_id, is_user_unit order by bucket_start_epoch_us
            rows between unbounded preceding and 1 preceding
        ), 0) as previous_clicks,
        coalesce(sum(conversions) over (
            partition by variant, unit_id, is_user_unit order by bucket_start_epoch_us
            rows between unbounded preceding and 1 preceding
        ), 0) as previous_conversions

    from unit_bucket_tallies

),

bucket_increments as (

    -- what one bucket adds to the cumulative sums of its variant: new units, tallies, and the growth
    -- of the unit moments, (E + e)^2 - E^2 = 2 E e + e^2 and (E + e)(D + d) - E D = E d + e D + e d
    -- for a unit whose tallies E, D before the bucket grow by e, d
    select
        variant,
        bucket_start_epoch_us,
        sum(is_first_bucket) as new_units,
        sum(requests) as requests,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        {{ recsys_eval.experiment_moment_increment('requests', 'previous_requests', 'requests', 'previous_requests') }}
            as unit_requests_squared_sum,
        {{ recsys_eval.experiment_moment_increment('clicks', 'previous_clicks', 'clicks', 'previous_clicks') }}
            as unit_clicks_squared_sum,
        {{ recsys_eval.experiment_moment_increment('clicks', 'previous_clicks', 'requests', 'previous_requests') }}
            as unit_clicks_requests_sum,
        {{ recsys_eval.experiment_moment_increment(
            'conversions', 'previous_conversions', 'conversions', 'previous_conversions') }}
            as unit_conversions_squared_sum,
        {{ recsys_eval.experiment_moment_increment(
            'conversions', 'previous_conversions', 'requests', 'previous_requests') }}
            as unit_conversions_requests_sum

    from unit_bucket_previous
    group by
        variant,
        bucket_start_epoch_us

),

buckets as (

    -- every bucket with at least one request in any arm, numbered in time order (a bucket without
    -- any request would repeat the previous row)
    select
        bucket_start_epoch_us,
        dense_rank() over (order by bucket_start_epoch_us) as bucket_index

    from bucket_increments
    group by bucket_start_epoch_us

),

observed_arms as (

    select variant from arms
    where is_observed

),

spine as (

    select
        observed_arms.variant,
        buckets.bucket_start_epoch_us,
        buckets.bucket_index

    from observed_arms
    cross join buckets

),

cumulative as (

    -- running sums over the buckets of each variant
    select
        spine.variant,
        spine.bucket_start_epoch_us,
        spine.bucket_index,
        sum(coalesce(bucket_increments.new_units, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as units,
        sum(coalesce(bucket_increments.requests, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as requests,
        sum(coalesce(bucket_increments.clicks, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as clicks,
        sum(coalesce(bucket_increments.conversions, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as conversions,
        sum(coalesce(bucket_increments.unit_requests_squared_sum, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as unit_requests_squared_sum,
        sum(coalesce(bucket_increments.unit_clicks_squared_sum, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as unit_clicks_squared_sum,
        sum(coalesce(bucket_increments.unit_clicks_requests_sum, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as unit_clicks_requests_sum,
        sum(coalesce(bucket_increments.unit_conversions_squared_sum, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as unit_conversions_squared_sum,
        sum(coalesce(bucket_increments.unit_conversions_requests_sum, 0)) over (
            partition by spine.variant order by spine.bucket_index
            rows between unbounded preceding and current row
        ) as unit_conversions_requests_sum

    from spine
    left join bucket_increments
        on
            spine.variant = bucket_increments.variant
            and spine.bucket_start_epoch_us = bucket_increments.bucket_start_epoch_us

),

final as (

    select
        variant,
        {{ recsys_eval.string_literal(sequential.bucket) }} as bucket,
        cast(bucket_index as {{ dbt.type_bigint() }}) as bucket_index,
        cast(bucket_start_epoch_us as {{ dbt.type_bigint() }}) as bucket_start_epoch_us,
        cast(units as {{ dbt.type_bigint() }}) as units,
        cast(requests as {{ dbt.type_bigint() }}) as exposures,
        cast(clicks as {{ dbt.type_bigint() }}) as clicks,
        cast(conversions as {{ dbt.type_bigint() }}) as conversions,
        cast(unit_requests_squared_sum as {{ dbt.type_bigint() }}) as unit_requests_squared_sum,
        cast(unit_clicks_squared_sum as {{ dbt.type_bigint() }}) as unit_clicks_squared_sum,
        cast(unit_clicks_requests_sum as {{ dbt.type_bigint() }}) as unit_clicks_requests_sum,
        cast(unit_conversions_squared_sum as {{ dbt.type_bigint() }}) as unit_conversions_squared_sum,
        cast(unit_conversions_requests_sum as {{ dbt.type_bigint() }}) as unit_conversions_requests_sum

    from cumulative

)

select * from final
