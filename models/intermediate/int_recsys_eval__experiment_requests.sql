{#- A table: the one place the per-request joins of int_recsys_eval__requests (a view on DuckDB)
    are computed for the experiment, narrow (assigned cases, the columns the analysis reads) -#}
{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set covariate_key = experiment.cuped_covariate_key %}

with

requests as (

    select * from {{ ref('int_recsys_eval__requests') }}

),

assigned as (

    -- the population (reference §5.1): kept exposures whose request_id has a surviving assignment;
    -- the variant comes from the assignment
    select * from requests
    where is_assigned

),

final as (

    select
        ----------  arm and segment (the request_id is not carried: writing 10M unique ids costs more
        ----------  than the whole analysis reads; the rows are unique per request by construction)
        variant,
        experiment_segment_key as segment_key,

        ----------  randomization unit (user-level variance): the exposure's user_id; a request without
        ----------  one is its own unit (is_user_unit false keeps it apart from a user of the same id)
        case when user_id != '' then user_id else request_id end as unit_id,
        user_id != '' as is_user_unit,

        ----------  per-request tallies (reference §5.2): event counts, not indicators
        click_count,
        conversion_count,
        revenue,
        click_value,
        case when click_count > 0 then 1 else 0 end as clicked,
        case when conversion_count > 0 then 1 else 0 end as converted,

        ----------  serving (guardrails, reference §5.4)
        is_empty_list,
        latency_ms,
        is_error,

        ----------  CUPED covariate (reference §5.7): null when off, missing or not a finite number
        {% if covariate_key is none -%}
        cast(null as {{ recsys_eval.type_double() }}) as covariate_value,
        {%- else -%}
        {{ recsys_eval.experiment_parse_double(
            recsys_eval.map_lookup('context', recsys_eval.string_literal(covariate_key))) }} as covariate_value,
        {%- endif %}

        ----------  timestamp (throughput span)
        {{ recsys_eval.experiment_epoch_microseconds('exposed_at') }} as exposed_at_epoch_us

    from assigned

)

select * from final
