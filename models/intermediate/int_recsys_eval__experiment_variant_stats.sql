{{ config(enabled=var('recsys_eval__using_assignments', true)) }}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

scoped_requests as (

    -- every case once in the global scope and once in its experiment segment (reference §5.3)
    select
        'global' as scope,
        '__global__' as segment_key,
        variant,
        unit_id,
        is_user_unit,
        click_count,
        conversion_count,
        revenue,
        clicked,
        converted,
        is_empty_list,
        latency_ms,
        is_error,
        covariate_value,
        exposed_at_epoch_us

    from experiment_requests

    union all

    select
        'segment' as scope,
        segment_key,
        variant,
        unit_id,
        is_user_unit,
        click_count,
        conversion_count,
        revenue,
        clicked,
        converted,
        is_empty_list,
        latency_ms,
        is_error,
        covariate_value,
        exposed_at_epoch_us

    from experiment_requests

),

unit_tallies as (

    -- one row per randomization unit (user) of the group: its requests and events in the group
    select
        scope,
        segment_key,
        variant,
        unit_id,
        is_user_unit,
        count(*) as requests,
        sum(click_count) as clicks,
        sum(conversion_count) as conversions

    from scoped_requests
    group by
        scope,
        segment_key,
        variant,
        unit_id,
        is_user_unit

),

unit_moments as (

    -- sufficient statistics of the user-level delta method (ratio metrics events / requests over users)
    select
        scope,
        segment_key,
        variant,
        count(*) as units,
        sum(requests * requests) as unit_requests_squared_sum,
        sum(clicks * clicks) as unit_clicks_squared_sum,
        sum(clicks * requests) as unit_clicks_requests_sum,
        sum(conversions * conversions) as unit_conversions_squared_sum,
        sum(conversions * requests) as unit_conversions_requests_sum

    from unit_tallies
    group by
        scope,
        segment_key,
        variant

),

aggregated as (

    select
        scope,
        segment_key,
        variant,

        ----------  variant metrics
        count(*) as exposures,
        sum(click_count) as clicks,
        sum(conversion_count) as conversions,
        sum(revenue) as revenue,

        ----------  second moments of the tallies (lift intervals)
        sum(click_count * click_count) as clicks_squared_sum,
        sum(conversion_count * conversion_count) as conversions_squared_sum,

        ----------  throughput span over the cases with a timestamp
        min(exposed_at_epoch_us) as first_exposed_at_epoch_us,
        max(exposed_at_epoch_us) as last_exposed_at_epoch_us,

        ----------  guardrail counts
        sum(case when is_error then 1 else 0 end) as error_exposures,
        sum(case when is_empty_list then 1 else 0 end) as empty_exposures,
        count(latency_ms) as latency_exposures,

        ----------  CUPED sums over the cases with a covariate
        count(covariate_value) as covariate_exposures,
        sum(covariate_value) as covariate_sum,
        sum(case when covariate_value is not null then clicked else 0 end) as covariate_clicked,
        sum(case when covariate_value is not null then converted else 0 end) as covariate_converted

    from scoped_requests
    group by
        scope,
        segment_key,
        variant

),

final as (

    select
        aggregated.scope,
        aggregated.segment_key,
        aggregated.variant,
        cast(aggregated.exposures as {{ dbt.type_bigint() }}) as exposures,
        cast(aggregated.clicks as {{ dbt.type_bigint() }}) as clicks,
        cast(aggregated.conversions as {{ dbt.type_bigint() }}) as conversions,
        cast(aggregated.revenue as {{ recsys_eval.type_double() }}) as revenue,
        cast(aggregated.clicks_squared_sum as {{ dbt.type_bigint() }}) as clicks_squared_sum,
        cast(aggregated.conversions_squared_sum as {{ dbt.type_bigint() }}) as conversions_squared_sum,
        aggregated.first_exposed_at_epoch_us,
        aggregated.last_exposed_at_epoch_us,
        cast(aggregated.error_exposures as {{ dbt.type_bigint() }}) as error_exposures,
        cast(aggregated.empty_exposures as {{ dbt.type_bigint() }}) as empty_exposures,
        cast(aggregated.latency_exposures as {{ dbt.type_bigint() }}) as latency_exposures,
        cast(aggregated.covariate_exposures as {{ dbt.type_bigint() }}) as covariate_exposures,
        cast(aggregated.covariate_sum as {{ recsys_eval.type_double() }}) as covariate_sum,
        cast(aggregated.covariate_clicked as {{ dbt.type_bigint() }}) as covariate_clicked,
        cast(aggregated.covariate_converted as {{ dbt.type_bigint() }}) as covariate_converted,
        cast(unit_moments.units as {{ dbt.type_bigint() }}) as units,
        cast(unit_moments.unit_requests_squared_sum as {{ dbt.type_bigint() }}) as unit_requests_squared_sum,
        cast(unit_moments.unit_clicks_squared_sum as {{ dbt.type_bigint() }}) as unit_clicks_squared_sum,
        cast(unit_moments.unit_clicks_requests_sum as {{ dbt.type_bigint() }}) as unit_clicks_requests_sum,
        cast(unit_moments.unit_conversions_squared_sum as {{ dbt.type_bigint() }}) as unit_conversions_squared_sum,
        cast(unit_moments.unit_conversions_requests_sum as {{ dbt.type_bigint() }}) as unit_conversions_requests_sum

    from aggregated
    inner join unit_moments
        on
            aggregated.scope = unit_moments.scope
            and aggregated.segment_key = unit_moments.segment_key
            and aggregated.variant = unit_moments.variant

)

select * from final
