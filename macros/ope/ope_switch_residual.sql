{#-
    ope_switch_residual(weight, residual, threshold): Switch-DR's residual term, the weighted
    residual w (r - m) where w <= tau and 0 above it (recsys_eval.ope.estimators, switch_dr).
-#}
{% macro ope_switch_residual(weight, residual, threshold) -%}
    case when {{ weight }} <= cast({{ threshold }} as {{ recsys_eval.type_double() }}) then {{ residual }} else cast(0 as {{ recsys_eval.type_double() }}) end
{%- endmacro %}
