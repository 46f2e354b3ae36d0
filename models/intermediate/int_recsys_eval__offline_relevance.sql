with

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_windowed') }}

),

graded_outcomes as (

    -- the gain of every windowed click / conversion outcome (var recsys_eval__offline_relevance;
    -- binary by default: gain 1, so value, event type and repeats do not matter, as in the reference)
    select
        request_id,
        item_id,
        {{ recsys_eval.offline_outcome_gain('event_type_normalized', 'event_value') }} as gain

    from outcomes
    where event_type_normalized in ('click', 'conversion')

),

item_gains as (

    -- an item's gain is the largest gain of its outcomes
    select
        request_id,
        item_id,
        max(gain) as gain

    from graded_outcomes
    group by
        request_id,
        item_id

),

final as (

    -- every judged item (one with a click or conversion outcome); R is the items with a positive gain
    select
        request_id,
        item_id,
        gain,
        gain > 0 as is_relevant,
        -- position in the ideal ranking (largest gain first) for the ideal DCG
        row_number() over (
            partition by request_id
            order by gain desc, item_id asc
        ) as ideal_position

    from item_gains

)

select * from final
