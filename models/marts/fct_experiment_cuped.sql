{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set covariate_key = experiment.cuped_covariate_key -%}
{%- set double = recsys_eval.type_double() %}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

population as (

    select count(*) as assigned_exposures
    from experiment_requests

),

covariate_requests as (

    -- CUPED statistics use only the cases with a finite covariate (reference §5.7)
    select
        covariate_value,
        clicked,
        converted

    from experiment_requests
    where covariate_value is not null

),

means as (

    select
        count(*) as covariate_exposures,
        {{ recsys_eval.exact_avg('covariate_value') }} as covariate_mean,
        cast(sum(clicked) as {{ double }}) / count(*) as clicked_mean,
        cast(sum(converted) as {{ double }}) / count(*) as converted_mean

    from covariate_requests

),

moments as (

    -- population moments (divide by n), pooled over all variants, two-pass for accuracy
    select
        {{ recsys_eval.exact_sum(
            '(covariate_requests.covariate_value - means.covariate_mean)
            * (covariate_requests.covariate_value - means.covariate_mean)') }} / count(*) as covariate_variance,
        {{ recsys_eval.exact_sum(
            '(covariate_requests.covariate_value - means.covariate_mean)
            * (covariate_requests.clicked - means.clicked_mean)') }} / count(*) as covariance_ctr,
        {{ recsys_eval.exact_sum(
            '(covariate_requests.covariate_value - means.covariate_mean)
            * (covariate_requests.converted - means.converted_mean)') }} / count(*) as covariance_conversion_rate

    from covariate_requests
    cross join means

),

final as (

    select
        {% if covariate_key is none -%}
        cast(null as {{ dbt.type_string() }}) as covariate_key,
        false as is_active,
        {%- else -%}
        {{ recsys_eval.string_literal(covariate_key) }} as covariate_key,
        coalesce(means.covariate_exposures > 0 and moments.covariate_variance > 0, false) as is_active,
        {%- endif %}
        cast(population.assigned_exposures as {{ dbt.type_bigint() }}) as assigned_exposures,
        cast(means.covariate_exposures as {{ dbt.type_bigint() }}) as covariate_exposures,
        {{ recsys_eval.safe_divide('means.covariate_exposures', 'population.assigned_exposures') }} as coverage_rate,
        cast(means.covariate_mean as {{ double }}) as covariate_mean,
        cast(moments.covariate_variance as {{ double }}) as covariate_variance,
        case
            when moments.covariate_variance > 0
                then cast(moments.covariance_ctr / moments.covariate_variance as {{ double }})
        end as theta_ctr,
        case
            when moments.covariate_variance > 0
                then cast(moments.covariance_conversion_rate / moments.covariate_variance as {{ double }})
        end as theta_conversion_rate

    from population
    cross join means
    cross join moments

)

select * from final
