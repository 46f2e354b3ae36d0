{#-
    percentile_cont(expression, fraction): an aggregate: the `fraction` quantile of a double expression
    with linear interpolation between the two nearest order statistics (numpy's default 'linear':
    position fraction (n - 1) in the sorted values), exact for any row order. Null rows are skipped;
    no rows give null. `fraction` is a SQL double literal in [0, 1].
    duckdb: quantile_cont. default (Spark): percentile (exact, the same interpolation).
-#}
{% macro percentile_cont(expression, fraction) -%}
    {{ return(adapter.dispatch('percentile_cont', 'recsys_eval')(expression, fraction)) }}
{%- endmacro %}

{% macro default__percentile_cont(expression, fraction) -%}
    percentile({{ expression }}, {{ fraction }})
{%- endmacro %}

{% macro duckdb__percentile_cont(expression, fraction) -%}
    quantile_cont({{ expression }}, {{ fraction }})
{%- endmacro %}
