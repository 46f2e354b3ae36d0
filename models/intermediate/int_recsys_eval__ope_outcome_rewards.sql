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

ranked as (

    select
        *,
        -- the reference keeps the last outcome row per (request, item), of any event type
        row_number() over (
            partition by request_id, item_id
            order by load_seq desc, line_no desc
        ) as outcome_recency,
        -- the fix keeps the last row of the reward event, whatever came after it
        row_number() over (
            partition by request_id, item_id, is_reward_event
            order by load_seq desc, line_no desc
        ) as same_event_recency

    from flagged

),

final as (

    select
        request_id,
        item_id,
        sum(
            case when outcome_recency = 1 and is_reward_event then reward_value else 0 end
        ) as last_outcome_reward,
        sum(
            case when same_event_recency = 1 and is_reward_event then reward_value else 0 end
        ) as last_reward_event_reward,
        max(case when is_reward_event then 1 else 0 end) = 1 as has_reward_event,
        count(*) as outcome_rows

    from ranked
    group by request_id, item_id

)

select * from final
