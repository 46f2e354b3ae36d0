{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{#-
    The estimators' per-sample terms, read by the aggregates the CLI fetches
    (int_recsys_eval__ope_group_sums, int_recsys_eval__ope_block_sums): request unit, the rows of
    int_recsys_eval__ope_rows with a sampled item (without fct_ope_samples' ids); item unit,
    fct_ope_samples. A view: nothing is written.
-#}
{{ config(materialized='view') }}

with

{% if ope.unit == 'request' -%}
ope_rows as (

    select * from {{ ref('int_recsys_eval__ope_rows') }}

),

samples as (

    select
        load_seq,
        line_no,
        cast(null as {{ dbt.type_bigint() }}) as item_position,
        segment_key,
        importance_weight,
        reward,
        model_logged,
        model_target,
        clipped_items

    from ope_rows
    where item_count > 0

),
{%- else %}
ope_samples as (

    select * from {{ ref('fct_ope_samples') }}

),

samples as (

    select
        load_seq,
        line_no,
        item_position,
        segment_key,
        importance_weight,
        reward,
        model_logged,
        model_target,
        clipped_items

    from ope_samples

),
{%- endif %}

model_terms as (

    -- without a reward-model estimator the model's terms are null: they count as 0
    select
        load_seq,
        line_no,
        item_position,
        segment_key,
        importance_weight,
        reward,
        {%- if ope.reward_model_terms %}
        model_logged,
        model_target,
        {%- else %}
        cast(0 as {{ double }}) as model_logged,
        cast(0 as {{ double }}) as model_target,
        {%- endif %}
        clipped_items

    from samples

),

residuals as (

    select
        *,
        importance_weight * (reward - model_logged) as weighted_residual

    from model_terms

),

final as (

    select
        load_seq,
        line_no,
        item_position,
        segment_key,
        importance_weight,
        reward,
        model_logged,
        model_target,
        weighted_residual,
        {{ recsys_eval.ope_switch_residual('importance_weight', 'weighted_residual', ope.switch_threshold) }}
            as switch_weighted_residual,
        clipped_items

    from residuals

)

select * from final
