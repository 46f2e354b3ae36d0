{#-
    safe_divide(numerator, denominator): numerator / denominator as a double, and 0 (not null)
    when the denominator is 0 or null — the reference's rule for every rate. Written with `case`
    so it is also safe under Spark's ANSI mode, where a division by zero raises.
-#}
{% macro safe_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('safe_divide', 'recsys_eval')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_divide(numerator, denominator) -%}
    case
        when coalesce({{ denominator }}, 0) = 0 then cast(0 as {{ recsys_eval.type_double() }})
        else cast({{ numerator }} as {{ recsys_eval.type_double() }})
            / cast({{ denominator }} as {{ recsys_eval.type_double() }})
    end
{%- endmacro %}
