{#-
    array_length(array_expression): number of elements, 0 for a null array (the reference reads a
    missing list as an empty one).
    DuckDB: len(). Spark: size(), which returns -1 (legacy) or null (ANSI) for null input, hence
    the explicit case. Default: ANSI cardinality() (Trino, Postgres).
-#}
{% macro array_length(array_expression) -%}
    {{ return(adapter.dispatch('array_length', 'recsys_eval')(array_expression)) }}
{%- endmacro %}

{% macro default__array_length(array_expression) -%}
    coalesce(cardinality({{ array_expression }}), 0)
{%- endmacro %}

{% macro duckdb__array_length(array_expression) -%}
    coalesce(len({{ array_expression }}), 0)
{%- endmacro %}

{% macro spark__array_length(array_expression) -%}
    case when {{ array_expression }} is null then 0 else size({{ array_expression }}) end
{%- endmacro %}
