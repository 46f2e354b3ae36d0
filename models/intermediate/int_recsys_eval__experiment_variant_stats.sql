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
        cast(covariate_converted as {{ dbt.type_bigint() }}) as covariate_converted

    from aggregated

)

select * from final
