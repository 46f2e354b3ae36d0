{{ config(enabled=recsys_eval.using_source('assignments')) }}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

segment_sums as (

    -- the per-case sums of each experiment segment x variant, in one grouped pass over the cases
    select
        segment_key,
        variant,

        ----------  variant metrics
        count(*) as exposures,
        sum(click_count) as clicks,
        sum(conversion_count) as conversions,
        {{ recsys_eval.exact_sum('revenue') }} as revenue,
        sum(clicked) as clicked_requests,
        sum(converted) as converted_requests,

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
        {{ recsys_eval.exact_sum('covariate_value') }} as covariate_sum,
        sum(case when covariate_value is not null then clicked else 0 end) as covariate_clicked,
        sum(case when covariate_value is not null then converted else 0 end) as covariate_converted

    from experiment_requests
    group by
        segment_key,
        variant

),

segment_unit_tallies as (

    -- one row per experiment segment x variant x randomization unit (user): its requests and events
    -- in the segment; the global unit tallies add up the unit's segments
    select
        segment_key,
        variant,
        unit_id,
        is_user_unit,
        count(*) as requests,
        sum(click_count) as clicks,
        sum(conversion_count) as conversions,
        sum(clicked) as clicked_requests,
        sum(converted) as converted_requests,
        {{ recsys_eval.exact_sum('revenue') }} as revenue

    from experiment_requests
    group by
        segment_key,
        variant,
        unit_id,
        is_user_unit

),

global_unit_tallies as (

    -- the same unit across the segments of its variant: one row per variant x unit, its tallies
    select
        variant,
        unit_id,
        is_user_unit,
        sum(requests) as requests,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(clicked_requests) as clicked_requests,
        sum(converted_requests) as converted_requests,
        {{ recsys_eval.exact_sum('revenue') }} as revenue

    from segment_unit_tallies
    group by
        variant,
        unit_id,
        is_user_unit

),

segment_unit_moments as (

    -- the unit sums of the user-level delta method (ratio metrics events / requests over users)
    select
        segment_key,
        variant,
        {{ recsys_eval.experiment_unit_moment_sums() }}

    from segment_unit_tallies
    group by
        segment_key,
        variant

),

segment_groups as (

    -- scope 'segment': one row per experiment segment x variant
    select
        segment_sums.segment_key,
        segment_sums.variant,
        segment_sums.exposures,
        segment_sums.clicks,
        segment_sums.conversions,
        segment_sums.revenue,
        segment_sums.clicked_requests,
        segment_sums.converted_requests,
        segment_sums.clicks_squared_sum,
        segment_sums.conversions_squared_sum,
        segment_sums.first_exposed_at_epoch_us,
        segment_sums.last_exposed_at_epoch_us,
        segment_sums.error_exposures,
        segment_sums.empty_exposures,
        segment_sums.latency_exposures,
        segment_sums.covariate_exposures,
        segment_sums.covariate_sum,
        segment_sums.covariate_clicked,
        segment_sums.covariate_converted,
        segment_unit_moments.units,
        segment_unit_moments.unit_requests_squared_sum,
        segment_unit_moments.unit_clicks_squared_sum,
        segment_unit_moments.unit_clicks_requests_sum,
        segment_unit_moments.unit_conversions_squared_sum,
        segment_unit_moments.unit_conversions_requests_sum,
        segment_unit_moments.unit_clicked_requests_squared_sum,
        segment_unit_moments.unit_clicked_requests_requests_sum,
        segment_unit_moments.unit_converted_requests_squared_sum,
        segment_unit_moments.unit_converted_requests_requests_sum,
        segment_unit_moments.unit_revenue_squared_sum,
        segment_unit_moments.unit_revenue_requests_sum

    from segment_sums
    inner join segment_unit_moments
        on
            segment_sums.segment_key = segment_unit_moments.segment_key
            and segment_sums.variant = segment_unit_moments.variant

),

global_sums as (

    -- scope 'global', the per-case sums: the variant's segments add up
    select
        variant,
        sum(exposures) as exposures,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        {{ recsys_eval.exact_sum('revenue') }} as revenue,
        sum(clicked_requests) as clicked_requests,
        sum(converted_requests) as converted_requests,
        sum(clicks_squared_sum) as clicks_squared_sum,
        sum(conversions_squared_sum) as conversions_squared_sum,
        min(first_exposed_at_epoch_us) as first_exposed_at_epoch_us,
        max(last_exposed_at_epoch_us) as last_exposed_at_epoch_us,
        sum(error_exposures) as error_exposures,
        sum(empty_exposures) as empty_exposures,
        sum(latency_exposures) as latency_exposures,
        sum(covariate_exposures) as covariate_exposures,
        {{ recsys_eval.exact_sum('covariate_sum') }} as covariate_sum,
        sum(covariate_clicked) as covariate_clicked,
        sum(covariate_converted) as covariate_converted

    from segment_sums
    group by variant

),

global_unit_moments as (

    -- scope 'global', the unit sums: over the variant's units (a unit counts once across segments)
    select
        variant,
        {{ recsys_eval.experiment_unit_moment_sums() }}

    from global_unit_tallies
    group by variant

),

global_groups as (

    select
        global_sums.variant,
        global_sums.exposures,
        global_sums.clicks,
        global_sums.conversions,
        global_sums.revenue,
        global_sums.clicked_requests,
        global_sums.converted_requests,
        global_sums.clicks_squared_sum,
        global_sums.conversions_squared_sum,
        global_sums.first_exposed_at_epoch_us,
        global_sums.last_exposed_at_epoch_us,
        global_sums.error_exposures,
        global_sums.empty_exposures,
        global_sums.latency_exposures,
        global_sums.covariate_exposures,
        global_sums.covariate_sum,
        global_sums.covariate_clicked,
        global_sums.covariate_converted,
        global_unit_moments.units,
        global_unit_moments.unit_requests_squared_sum,
        global_unit_moments.unit_clicks_squared_sum,
        global_unit_moments.unit_clicks_requests_sum,
        global_unit_moments.unit_conversions_squared_sum,
        global_unit_moments.unit_conversions_requests_sum,
        global_unit_moments.unit_clicked_requests_squared_sum,
        global_unit_moments.unit_clicked_requests_requests_sum,
        global_unit_moments.unit_converted_requests_squared_sum,
        global_unit_moments.unit_converted_requests_requests_sum,
        global_unit_moments.unit_revenue_squared_sum,
        global_unit_moments.unit_revenue_requests_sum

    from global_sums
    inner join global_unit_moments
        on global_sums.variant = global_unit_moments.variant

),

aggregated as (

    -- every group once in the global scope and once per experiment segment (reference §5.3)
    select
        'global' as scope,
        '__all__' as segment_key,
        *

    from global_groups

    union all

    select
        'segment' as scope,
        *

    from segment_groups

),

final as (

    select
        scope,
        segment_key,
        variant,
        cast(exposures as {{ dbt.type_bigint() }}) as exposures,
        cast(clicks as {{ dbt.type_bigint() }}) as clicks,
        cast(conversions as {{ dbt.type_bigint() }}) as conversions,
        cast(revenue as {{ recsys_eval.type_double() }}) as revenue,
        cast(clicks_squared_sum as {{ dbt.type_bigint() }}) as clicks_squared_sum,
        cast(conversions_squared_sum as {{ dbt.type_bigint() }}) as conversions_squared_sum,
        first_exposed_at_epoch_us,
        last_exposed_at_epoch_us,
        cast(error_exposures as {{ dbt.type_bigint() }}) as error_exposures,
        cast(empty_exposures as {{ dbt.type_bigint() }}) as empty_exposures,
        cast(latency_exposures as {{ dbt.type_bigint() }}) as latency_exposures,
        cast(covariate_exposures as {{ dbt.type_bigint() }}) as covariate_exposures,
        cast(covariate_sum as {{ recsys_eval.type_double() }}) as covariate_sum,
        cast(covariate_clicked as {{ dbt.type_bigint() }}) as covariate_clicked,
        cast(covariate_converted as {{ dbt.type_bigint() }}) as covariate_converted,
        cast(units as {{ dbt.type_bigint() }}) as units,
        cast(unit_requests_squared_sum as {{ dbt.type_bigint() }}) as unit_requests_squared_sum,
        cast(unit_clicks_squared_sum as {{ dbt.type_bigint() }}) as unit_clicks_squared_sum,
        cast(unit_clicks_requests_sum as {{ dbt.type_bigint() }}) as unit_clicks_requests_sum,
        cast(unit_conversions_squared_sum as {{ dbt.type_bigint() }}) as unit_conversions_squared_sum,
        cast(unit_conversions_requests_sum as {{ dbt.type_bigint() }}) as unit_conversions_requests_sum,

        ----------  the sums of the other defined metrics (experiment_metric_definitions)
        cast(clicked_requests as {{ dbt.type_bigint() }}) as clicked_requests,
        cast(converted_requests as {{ dbt.type_bigint() }}) as converted_requests,
        cast(unit_clicked_requests_squared_sum as {{ dbt.type_bigint() }}) as unit_clicked_requests_squared_sum,
        cast(unit_clicked_requests_requests_sum as {{ dbt.type_bigint() }}) as unit_clicked_requests_requests_sum,
        cast(unit_converted_requests_squared_sum as {{ dbt.type_bigint() }}) as unit_converted_requests_squared_sum,
        cast(unit_converted_requests_requests_sum as {{ dbt.type_bigint() }}) as unit_converted_requests_requests_sum,
        cast(unit_revenue_squared_sum as {{ recsys_eval.type_double() }}) as unit_revenue_squared_sum,
        cast(unit_revenue_requests_sum as {{ recsys_eval.type_double() }}) as unit_revenue_requests_sum

    from aggregated

)

select * from final
