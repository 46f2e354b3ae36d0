{#-
    stats_polynomial(variable, coefficients): Horner form of a polynomial as SQL text.
    coefficients are SQL double literals, highest degree first; `variable` is repeated once per
    degree, so pass a column or a short expression. Not SQL-dialect specific, so not dispatched.
    stats_double_literal(value): a Jinja number as a SQL double literal. The exponent form
    (1.00000000000000000e+00) is a double, not a decimal, on DuckDB and Spark alike.
-#}
{% macro stats_polynomial(variable, coefficients) -%}
    {%- set ns = namespace(sql=coefficients[0]) -%}
    {%- for coefficient in coefficients[1:] -%}
        {%- set ns.sql = '(' ~ ns.sql ~ ') * (' ~ variable ~ ') + ' ~ coefficient -%}
    {%- endfor -%}
    ({{ ns.sql }})
{%- endmacro %}

{% macro stats_double_literal(value) -%}
    {{ "%.17e" | format(value) }}
{%- endmacro %}
