{#-
    ope_switch_residual(weight, residual, threshold): Switch-DR's residual term, the weighted
    residual w (r - m) where w <= tau and 0 above it (recsys_eval.ope.estimators, switch_dr).
-#}
{% macro ope_switch_residual(weight, residual, threshold) -%}
    {%- set double = recsys_eval.type_double() -%}
    case
        when {{ weight }} <= cast({{ threshold }} as {{ double }}) then {{ residual }}
        else cast(0 as {{ double }})
    end
{%- endmacro %}
