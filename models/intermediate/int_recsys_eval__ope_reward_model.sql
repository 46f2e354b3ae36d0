{%- set ope = recsys_eval.ope_options() -%}

with

{% if ope.reward_model == 'reference' -%}
outcomes as (

    select * from {{ ref('stg_recsys_eval__outcomes') }}

),

observations as (

    -- the reference's model: the mean reward per EVENT over every outcome row of the reward event
    -- for the item, orphans included (1 for any clicked item when the reward is a click)
    select
        item_id,
        {{ recsys_eval.ope_reward_value('event_value') }} as reward

    from outcomes
    where event_type_normalized = {{ recsys_eval.string_literal(ope.reward_event) }}

),
{%- else -%}
item_stats as (

    select * from {{ ref('int_recsys_eval__ope_item_stats') }}

),
{%- endif %}

{% if ope.reward_model == 'reference' -%}
final as (

    select
        item_id,
        cast({{ recsys_eval.exact_avg('reward') }} as {{ recsys_eval.type_double() }}) as predicted_reward,
        count(*) as observations

    from observations
    group by item_id

)
{%- else -%}
final as (

    -- the fix: the mean reward per EXPOSURE of the item, over every item that enters estimation
    -- (its sums come from the one pass over the items of int_recsys_eval__ope_item_stats)
    select
        item_id,
        cast(sample_reward_sum / sample_items as {{ recsys_eval.type_double() }}) as predicted_reward,
        sample_items as observations

    from item_stats
    where sample_items > 0

)
{%- endif %}

select * from final
