{#-
    The OPE sample formulas (reference §6.2), one macro each. Portable SQL (no dispatch needed):
    every literal is cast to double, so Spark never reads them as decimals.
-#}

{#-
    ope_reward_value(value_expression): the reward of a matching outcome row: its value when non-zero,
    else 1 (a missing value or 0 counts as 1; negative values are kept).
-#}
{% macro ope_reward_value(value_expression) -%}
    case
        when coalesce({{ value_expression }}, cast(0 as {{ recsys_eval.type_double() }})) = 0
            then cast(1 as {{ recsys_eval.type_double() }})
        else cast({{ value_expression }} as {{ recsys_eval.type_double() }})
    end
{%- endmacro %}


{#-
    ope_position_weight(rank_expression, discount): 1 / log2(rank + 1) when discount is 'log2', else 1.
    A rank below 1 has no finite log2 weight (the reference divides by zero): null here, and the CLI
    rejects such rows with their file and line before estimating anything.
-#}
{% macro ope_position_weight(rank_expression, discount) -%}
    {%- if discount == 'log2' -%}
        case
            when {{ rank_expression }} >= 1
                then cast(1 as {{ recsys_eval.type_double() }})
                / log2(cast({{ rank_expression }} as {{ recsys_eval.type_double() }}) + cast(1 as {{ recsys_eval.type_double() }}))
        end
    {%- else -%}
        cast(1 as {{ recsys_eval.type_double() }})
    {%- endif -%}
{%- endmacro %}


{#-
    ope_importance_weight(target_expression, logging_expression, clipping): target / logging, capped
    at `clipping` when clipping > 0. Callers guarantee logging > 0.
-#}
{% macro ope_importance_weight(target_expression, logging_expression, clipping) -%}
    {%- set raw -%}
        cast({{ target_expression }} as {{ recsys_eval.type_double() }})
            / cast({{ logging_expression }} as {{ recsys_eval.type_double() }})
    {%- endset -%}
    {%- if clipping > 0 -%}
        least({{ raw }}, cast({{ clipping }} as {{ recsys_eval.type_double() }}))
    {%- else -%}
        {{ raw }}
    {%- endif -%}
{%- endmacro %}


{#-
    ope_reward_aggregate(expression, aggregation): aggregate of a request's per-item values per
    ope.reward_aggregation: 'sum' (recsys_eval.exact_sum, independent of row order) or 'max'.
-#}
{% macro ope_reward_aggregate(expression, aggregation) -%}
    {%- if aggregation == 'sum' -%}
        {{ recsys_eval.exact_sum(expression) }}
    {%- else -%}
        max({{ expression }})
    {%- endif -%}
{%- endmacro %}
