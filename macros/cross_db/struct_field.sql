{#-
    struct_field(struct_expression, field): one field of a struct.
    Default: dot access (Spark, BigQuery, Trino). DuckDB: struct_extract(), which is unambiguous
    next to table aliases and does not trip sqlfluff's RF01/RF03 on `alias.struct.field`.
-#}
{% macro struct_field(struct_expression, field) -%}
    {{ return(adapter.dispatch('struct_field', 'recsys_eval')(struct_expression, field)) }}
{%- endmacro %}

{% macro default__struct_field(struct_expression, field) -%}
    {{ struct_expression }}.{{ field }}
{%- endmacro %}

{% macro duckdb__struct_field(struct_expression, field) -%}
    struct_extract({{ struct_expression }}, '{{ field }}')
{%- endmacro %}
