{#-
    parse_string_map_json(json_column): JSON text of an object with string values (`context`) ->
    map(string, string), the shape of the raw tables' context column. Null in, null out.
    DuckDB: a json -> MAP(VARCHAR, VARCHAR) cast. Spark: from_json with a map DDL schema.
-#}
{% macro parse_string_map_json(json_column) -%}
    {{ return(adapter.dispatch('parse_string_map_json', 'recsys_eval')(json_column)) }}
{%- endmacro %}

{% macro default__parse_string_map_json(json_column) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.parse_string_map_json has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__parse_string_map_json(json_column) -%}
    cast(cast({{ json_column }} as json) as map(varchar, varchar))
{%- endmacro %}

{% macro spark__parse_string_map_json(json_column) -%}
    from_json({{ json_column }}, 'map<string, string>')
{%- endmacro %}
