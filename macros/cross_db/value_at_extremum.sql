{#-
    value_at_max(value_expression, order_expression): an aggregate; the value of the row with the
    largest order_expression in the group, null when that row's value is null (it is not skipped
    for an earlier non-null one). The order must be unique within a group
    (a file position), so the row is well defined. One grouped pass, no window and no join back.
    default: max_by (Spark, Databricks, Trino, Snowflake: it keeps a null value).
    duckdb: arg_max_null (DuckDB's arg_max / max_by skip rows whose value is null).
-#}
{% macro value_at_max(value_expression, order_expression) -%}
    {{ return(adapter.dispatch('value_at_max', 'recsys_eval')(value_expression, order_expression)) }}
{%- endmacro %}

{% macro default__value_at_max(value_expression, order_expression) -%}
    max_by({{ value_expression }}, {{ order_expression }})
{%- endmacro %}

{% macro duckdb__value_at_max(value_expression, order_expression) -%}
    arg_max_null({{ value_expression }}, {{ order_expression }})
{%- endmacro %}


{#- file_position_key(load_seq, line_no): one bigint that orders rows by file (load_seq, then
    line_no); line numbers stay below 2^32. -#}
{% macro file_position_key(load_seq='load_seq', line_no='line_no') -%}
    {{ load_seq }} * 4294967296 + {{ line_no }}
{%- endmacro %}
