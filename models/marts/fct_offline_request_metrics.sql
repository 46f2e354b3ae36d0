{%- set specs = recsys_eval.offline_metric_specs() | selectattr('kind', 'equalto', 'per_case') | list -%}
{%- set dialect = recsys_eval.offline_dialect() -%}
{#- DuckDB: a view (one row per case and spec is cheap to compute from the case's lists and costly to
    write; fct_offline_metrics aggregates it as it goes); elsewhere a table. #}
{{ config(materialized=recsys_eval.view_on_duckdb()) }}

with

cases as (

    select * from {{ ref('int_recsys_eval__offline_cases') }}

),

metric_specs as (

    -- the per-case families of var recsys_eval__offline_metrics, in configured order
    {{ recsys_eval.offline_metric_specs_sql(specs) }}

),

case_specs as (

    -- the evaluated cases (all of them in the reference dialect) x the per-case specs
    select
        {{ recsys_eval.offline_case_spec_columns('cases', 'metric_specs') }}

    from cases
    cross join metric_specs
    where cases.is_evaluated

),

final as (

    {{ recsys_eval.offline_case_metrics_sql('case_specs', dialect) }}  -- noqa: PRS

)

select * from final
