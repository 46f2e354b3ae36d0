{#-
    map_lookup(map_expression, key_literal): the value of a string map for a key, null when the key
    or the map is absent. key_literal is SQL (use recsys_eval.string_literal for var values).
    DuckDB >= 1.1: map[key] returns the value (not a list). Spark: try_element_at never raises
    under ANSI mode. No portable default: other engines must add an implementation.
-#}
{% macro map_lookup(map_expression, key_literal) -%}
    {{ return(adapter.dispatch('map_lookup', 'recsys_eval')(map_expression, key_literal)) }}
{%- endmacro %}

{% macro default__map_lookup(map_expression, key_literal) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.map_lookup has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__map_lookup(map_expression, key_literal) -%}
    {{ map_expression }}[{{ key_literal }}]
{%- endmacro %}

{% macro spark__map_lookup(map_expression, key_literal) -%}
    try_element_at({{ map_expression }}, {{ key_literal }})
{%- endmacro %}
