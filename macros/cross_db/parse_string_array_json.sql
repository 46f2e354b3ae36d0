{#-
    parse_string_array_json(json_column): JSON text of an array of strings (a ranklist's `items`)
    -> array of string. Null in, null out.
    DuckDB: from_json with a JSON structure. Spark: from_json with an array DDL schema.
-#}
{% macro parse_string_array_json(json_column) -%}
    {{ return(adapter.dispatch('parse_string_array_json', 'recsys_eval')(json_column)) }}
{%- endmacro %}

{% macro default__parse_string_array_json(json_column) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.parse_string_array_json has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__parse_string_array_json(json_column) -%}
    from_json({{ json_column }}, '["VARCHAR"]')
{%- endmacro %}

{% macro spark__parse_string_array_json(json_column) -%}
    from_json({{ json_column }}, 'array<string>')
{%- endmacro %}
