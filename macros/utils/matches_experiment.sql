{#-
    matches_experiment(experiment_id_column): predicate for the assignment filter (reference §2.4):
    lower(column) = lower(var recsys_eval__experiment_id) when the var is set, else `1 = 1`
    (assignments of all experiments are mixed).
-#}
{% macro matches_experiment(experiment_id_column) -%}
    {%- set experiment_id = recsys_eval.config_var('recsys_eval__experiment_id', none) -%}
    {%- if experiment_id is none or experiment_id == '' -%}
        1 = 1
    {%- else -%}
        lower({{ experiment_id_column }}) = lower({{ recsys_eval.string_literal(experiment_id) }})
    {%- endif -%}
{%- endmacro %}
