{#-
    type_double(): a 64-bit float type name. dbt.type_float() renders `float`, which is a 32-bit
    REAL on DuckDB (0.029520000456 instead of 0.02952), so metrics never use it.
-#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'recsys_eval')()) }}
{%- endmacro %}

{# DuckDB, Spark, Postgres, Trino, Snowflake all accept `double` (Postgres as `double precision`). #}
{% macro default__type_double() -%}
    double
{%- endmacro %}

{% macro bigquery__type_double() -%}
    float64
{%- endmacro %}

{% macro postgres__type_double() -%}
    double precision
{%- endmacro %}
