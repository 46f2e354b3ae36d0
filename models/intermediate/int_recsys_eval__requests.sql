{#- DuckDB: a view, planned with each consumer (the data-quality marts and the experiment cases read a
    few columns each; the context maps and string ids are never written); elsewhere a table -#}
{{ config(materialized=recsys_eval.view_on_duckdb()) }}
{%- set using_assignments = recsys_eval.using_source('assignments') -%}
{%- set slice_keys = recsys_eval.config_var('recsys_eval__slice_keys', []) -%}
{%- set experiment_slice_keys = recsys_eval.config_var('recsys_eval__experiment_slice_keys', []) -%}

with

exposures as (

    select * from {{ ref('int_recsys_eval__exposures_first_seen') }}

),

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_per_request') }}

),

{% if using_assignments -%}
assignments as (

    select * from {{ ref('int_recsys_eval__assignments_latest') }}

),
{%- endif %}

joined as (

    select
        ----------  ids
        exposures.request_id,
        exposures.exposure_row_id,
        exposures.user_id,

        ----------  segments (reference §2.7, exposure context)
        exposures.context,
        exposures.tenant,
        exposures.surface,
        {{ recsys_eval.segment_key('exposures.context', slice_keys) }} as segment_key,
        {{ recsys_eval.segment_key('exposures.context', experiment_slice_keys) }} as experiment_segment_key,

        ----------  list and serving
        exposures.item_count,
        exposures.item_count = 0 as is_empty_list,
        exposures.latency_ms,
        exposures.is_error,
        exposures.duplicate_exposure_rows,

        ----------  outcomes
        coalesce(outcomes.outcome_count, 0) as outcome_count,
        coalesce(outcomes.click_count, 0) as click_count,
        coalesce(outcomes.conversion_count, 0) as conversion_count,
        cast(coalesce(outcomes.revenue, 0) as {{ recsys_eval.type_double() }}) as revenue,
        cast(coalesce(outcomes.click_value, 0) as {{ recsys_eval.type_double() }}) as click_value,
        coalesce(outcomes.outcome_count, 0) > 0 as has_outcome,

        ----------  assignment
        {% if using_assignments -%}
        assignments.experiment_id,
        assignments.variant,
        assignments.request_id is not null as is_assigned,
        {%- else -%}
        cast(null as {{ dbt.type_string() }}) as experiment_id,
        cast(null as {{ dbt.type_string() }}) as variant,
        false as is_assigned,
        {%- endif %}

        ----------  timestamps
        exposures.exposed_at,

        ----------  lineage of the kept exposure
        exposures.load_seq,
        exposures.line_no

    from exposures
    left join outcomes
        on exposures.request_id = outcomes.request_id
    {% if using_assignments -%}
    left join assignments
        on exposures.request_id = assignments.request_id
    {%- endif %}

)

select * from joined
