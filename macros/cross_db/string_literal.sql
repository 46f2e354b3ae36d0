{#-
    string_literal(value): a SQL string literal for a value that comes from a var (slice keys,
    experiment id, time bounds). Vars reach SQL only through this macro.
    DuckDB / ANSI: double the single quotes. Spark: backslash escapes, and `'a''b'` would be read
    as two adjacent literals ('ab'), so quotes are escaped with a backslash instead.
-#}
{% macro string_literal(value) -%}
    {{ return(adapter.dispatch('string_literal', 'recsys_eval')(value)) }}
{%- endmacro %}

{% macro default__string_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro spark__string_literal(value) -%}
    '{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}
