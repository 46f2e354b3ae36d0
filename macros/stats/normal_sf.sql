{#-
    normal_sf(x): the standard normal survival function 1 - Phi(x) = 0.5 * erfc(x / sqrt(2)), with
    full relative accuracy in the upper tail (no 1 - Phi cancellation).
-#}
{% macro normal_sf(x) -%}
    {{ return(adapter.dispatch('normal_sf', 'recsys_eval')(x)) }}
{%- endmacro %}

{% macro default__normal_sf(x) -%}
    (5.0e-1 * {{ recsys_eval.erfc('(' ~ x ~ ') * 7.0710678118654752440e-1') }})
{%- endmacro %}
