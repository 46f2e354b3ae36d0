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
ope_items as (

    select * from {{ ref('int_recsys_eval__ope_items') }}

),

observations as (

    -- the fix: the mean reward per EXPOSURE of the item, over every item that enters estimation
    select
        item_id,
        reward

    from ope_items
    where item_status = 'sample'

),
{%- endif %}

final as (

    select
        item_id,
        cast(avg(reward) as {{ recsys_eval.type_double() }}) as predicted_reward,
        count(*) as observations

    from observations
    group by item_id

)

select * from final
