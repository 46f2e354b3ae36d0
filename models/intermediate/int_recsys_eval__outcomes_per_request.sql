with

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_windowed') }}

),

per_request as (

    -- per-request tallies (reference §5.2): event counts, not indicators (count of a case: a bigint,
    -- where a sum of 0/1 is a 128-bit integer on DuckDB); revenue sums the value of conversion rows
    -- only, a missing value counting as 0; click_value the same over click rows (custom experiment
    -- metrics of type sum or mean over clicks)
    select
        request_id,
        count(*) as outcome_count,
        count(case when event_type_normalized = 'click' then 1 end) as click_count,
        count(case when event_type_normalized = 'conversion' then 1 end) as conversion_count,
        {{ recsys_eval.exact_sum(
            "case when event_type_normalized = 'conversion' then coalesce(event_value, 0) else 0 end") }}
            as revenue,
        {{ recsys_eval.exact_sum(
            "case when event_type_normalized = 'click' then coalesce(event_value, 0) else 0 end") }}
            as click_value,
        min(occurred_at) as first_outcome_at,
        max(occurred_at) as last_outcome_at

    from outcomes
    group by request_id

)

select * from per_request
