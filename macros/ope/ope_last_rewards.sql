{#-
    ope_last_rewards(flagged): the select of int_recsys_eval__ope_outcome_rewards over `flagged`
    (request_id, item_id, load_seq, line_no, is_reward_event, reward_value; one row per outcome row),
    one row per (request_id, item_id):
      last_outcome_reward       the reward of the LAST outcome row of any event type in file order
                                (load_seq, line_no), 0 when that row is not of the reward event (the reference)
      last_reward_event_reward  the reward of the last row of the reward event, 0 without one (the fix)
      has_reward_event, outcome_rows
    default: two row_number windows, then one aggregate. duckdb: arg_max over the file position
    (recsys_eval.file_position_key, one bigint) in the same aggregate (no sort); (load_seq, line_no) is
    unique per outcome row, so both pick the same row.
-#}
{% macro ope_last_rewards(flagged) -%}
    {{ return(adapter.dispatch('ope_last_rewards', 'recsys_eval')(flagged)) }}
{%- endmacro %}

{% macro default__ope_last_rewards(flagged) -%}
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

    from (
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

        from {{ flagged }}
    ) as ranked
    group by request_id, item_id
{%- endmacro %}

{% macro duckdb__ope_last_rewards(flagged) -%}
    select
        request_id,
        item_id,
        arg_max(
            case when is_reward_event then reward_value else cast(0 as double) end,
            {{ recsys_eval.file_position_key() }}
        ) as last_outcome_reward,
        coalesce(
            arg_max(reward_value, {{ recsys_eval.file_position_key() }}) filter (where is_reward_event),
            cast(0 as double)
        ) as last_reward_event_reward,
        bool_or(is_reward_event) as has_reward_event,
        count(*) as outcome_rows

    from {{ flagged }}
    group by request_id, item_id
{%- endmacro %}
