{#- The materialization of an intermediate step that DuckDB should plan together with its
    consumers: a view on DuckDB (its consumers read a few columns each, so the wide rows are never
    written), a table elsewhere (Spark recomputes views per consumer). One place for the rule that
    several models share: `{{ config(materialized=recsys_eval.view_on_duckdb()) }}`. -#}
{% macro view_on_duckdb() -%}
    {{ return('view' if target.type == 'duckdb' else 'table') }}
{%- endmacro %}
