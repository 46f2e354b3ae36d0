{%- set ope = recsys_eval.ope_options() -%}

with

outcomes as (

    select * from {{ ref('stg_recsys_eval__outcomes') }}

),

flagged as (

    select
        request_id,
        item_id,
        load_seq,
        line_no,
        event_type_normalized = {{ recsys_eval.string_literal(ope.reward_event) }} as is_reward_event,
        {{ recsys_eval.ope_reward_value('event_value') }} as reward_value

    from outcomes

),

final as (

    -- one row per (request, item): the reward of the last outcome row, and of the last reward event
    -- row, in file order (recsys_eval.ope_last_rewards: no window sort on DuckDB)
    {{ recsys_eval.ope_last_rewards('flagged') }}

)

select * from final
