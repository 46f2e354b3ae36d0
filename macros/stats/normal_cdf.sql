{#-
    normal_cdf(x): the standard normal CDF Phi(x) = 0.5 * erfc(-x / sqrt(2)), i.e. the reference's
    0.5 * (1 + erf(x / sqrt(2))) (§5.6) written through erfc so the lower tail keeps its relative
    accuracy. `x` is repeated many times: pass a column.
-#}
{% macro normal_cdf(x) -%}
    {{ return(adapter.dispatch('normal_cdf', 'recsys_eval')(x)) }}
{%- endmacro %}

{% macro default__normal_cdf(x) -%}
    (5.0e-1 * {{ recsys_eval.erfc('-(' ~ x ~ ') * 7.0710678118654752440e-1') }})
{%- endmacro %}
