with

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_windowed') }}

),

requests as (

    select * from {{ ref('int_recsys_eval__exposures_first_seen') }}

),

items as (

    select * from {{ ref('stg_recsys_eval__exposure_items') }}

),

outcome_exposures as (

    -- only the kept exposures of requests with an outcome can have a shown outcome item
    select distinct requests.exposure_row_id

    from requests
    inner join outcomes
        on requests.request_id = outcomes.request_id

),

shown_items as (

    select distinct
        items.exposure_row_id,
        items.item_id

    from items
    inner join outcome_exposures
        on items.exposure_row_id = outcome_exposures.exposure_row_id

),

joined as (

    -- the join key is request_id only, exact match; no attribution window (reference §2.1)
    select
        outcomes.outcome_row_id,
        outcomes.request_id,
        outcomes.user_id,
        outcomes.item_id,
        outcomes.event_type,
        outcomes.event_type_normalized,
        outcomes.event_value,
        outcomes.occurred_at,
        requests.exposure_row_id,
        requests.exposed_at,
        requests.exposure_row_id is not null as is_joined,
        -- orphan outcomes get empty tenant and surface
        coalesce(requests.tenant, '') as tenant,
        coalesce(requests.surface, '') as surface,
        shown_items.item_id is not null as is_item_shown,
        outcomes.load_seq,
        outcomes.line_no

    from outcomes
    left join requests
        on outcomes.request_id = requests.request_id
    left join shown_items
        on
            requests.exposure_row_id = shown_items.exposure_row_id
            and outcomes.item_id = shown_items.item_id

)

select * from joined
