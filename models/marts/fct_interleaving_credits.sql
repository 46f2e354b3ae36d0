{{ config(enabled=var('recsys_eval__using_rankers', true)) }}

with

shown_items as (

    select * from {{ ref('int_recsys_eval__interleaving_shown_items') }}

),

outcomes as (

    select * from {{ ref('stg_recsys_eval__outcomes') }}

),

clicks as (

    -- only clicks earn credit (case-insensitive; conversions are ignored), each click once (§7.3)
    select
        request_id,
        item_id,
        count(*) as clicks

    from outcomes
    where event_type_normalized = 'click'
    group by
        request_id,
        item_id

),

final as (

    -- clicks on items that were not shown earn nothing (inner join)
    select
        shown_items.request_id,
        shown_items.slot,
        shown_items.item_id,
        shown_items.team,
        cast(clicks.clicks as {{ dbt.type_bigint() }}) as clicks

    from shown_items
    inner join clicks
        on
            shown_items.request_id = clicks.request_id
            and shown_items.item_id = clicks.item_id

)

select * from final
