{#-
    normal_two_sided_p_value(z): the two-sided p-value of a z statistic, 2 * (1 - Phi(|z|)) clamped to
    [0, 1] (reference §5.6), computed as erfc(|z| / sqrt(2)) so small p-values keep their relative
    accuracy. erfc of a non-negative argument lies in [0, 1] by construction, so no clamp is needed
    (a `least(1, ...)` would also turn a null into 1 on Spark, which skips nulls in least).
    Null in, null out; the caller applies the reference's "p = 1 when n = 0 or se = 0".
-#}
{% macro normal_two_sided_p_value(z) -%}
    {{ return(adapter.dispatch('normal_two_sided_p_value', 'recsys_eval')(z)) }}
{%- endmacro %}

{% macro default__normal_two_sided_p_value(z) -%}
    {{ recsys_eval.erfc('abs(' ~ z ~ ') * 7.0710678118654752440e-1') }}
{%- endmacro %}
