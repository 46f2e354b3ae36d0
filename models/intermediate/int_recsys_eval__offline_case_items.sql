with

cases as (

    select * from {{ ref('int_recsys_eval__offline_cases') }}

),

items as (

    select * from {{ ref('stg_recsys_eval__exposure_items') }}

),

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_windowed') }}

),

relevant_items as (

    select distinct
        request_id,
        item_id

    from outcomes
    where event_type_normalized in ('click', 'conversion')

),

case_items as (

    -- L: the kept exposure's items in stable rank order (item_position); duplicates and empty ids kept
    select
        cases.request_id,
        cases.segment_key,
        items.item_position,
        items.item_id,
        relevant_items.item_id is not null as is_relevant

    from cases
    inner join items
        on cases.exposure_row_id = items.exposure_row_id
    left join relevant_items
        on
            cases.request_id = relevant_items.request_id
            and items.item_id = relevant_items.item_id

),

final as (

    select
        request_id,
        segment_key,
        item_position,
        item_id,
        is_relevant,
        -- hits among the first item_position entries; a duplicate counts each time it appears
        sum(case when is_relevant then 1 else 0 end) over (
            partition by request_id
            order by item_position
            rows between unbounded preceding and current row
        ) as cumulative_hits

    from case_items

)

select * from final
