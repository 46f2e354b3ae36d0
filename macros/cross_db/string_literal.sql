{#-
    string_literal(value): a SQL string literal for a value that comes from a var (slice keys,
    experiment id, time bounds). Vars reach SQL only through this macro.
    DuckDB / ANSI: double the single quotes. Spark: backslash escapes, and `'a''b'` would be read
    as two adjacent literals ('ab'), so quotes are escaped with a backslash instead. Spark also
    substitutes `${env:NAME}`, `${spark.conf}` ... anywhere in the SQL text before parsing
    (spark.sql.variable.substitute, on by default), which would leak environment variables into
    the results: every `$` is written as the escape \u0024, which the substitution does not see.
-#}
{% macro string_literal(value) -%}
    {{ return(adapter.dispatch('string_literal', 'recsys_eval')(value)) }}
{%- endmacro %}

{% macro default__string_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro spark__string_literal(value) -%}
    '{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") | replace("$", "\\u0024") }}'
{%- endmacro %}
