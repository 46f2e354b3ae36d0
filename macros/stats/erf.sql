{#-
    erf(x): the error function as a SQL double expression (DuckDB and Spark have none).
    Cody's rational approximation directly for |x| <= 0.46875 (full relative accuracy near 0),
    otherwise sign(x) * (1 - erfc(|x|)); see recsys_eval.erfc. Absolute error below 1e-15.
-#}
{% macro erf(x) -%}
    {{ return(adapter.dispatch('erf', 'recsys_eval')(x)) }}
{%- endmacro %}

{% macro default__erf(x) -%}
    {%- set v = 'cast((' ~ x ~ ') as ' ~ recsys_eval.type_double() ~ ')' -%}
    case
        when {{ v }} is null then cast(null as {{ recsys_eval.type_double() }})
        when abs({{ v }}) <= 4.6875e-1 then {{ recsys_eval.erf_small(v) }}
        when {{ v }} > 0.0e0 then 1.0e0 - {{ recsys_eval.erfc_positive(v) }}
        else {{ recsys_eval.erfc_positive('(-' ~ v ~ ')') }} - 1.0e0
    end
{%- endmacro %}
