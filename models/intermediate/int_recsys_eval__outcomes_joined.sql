with

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_windowed') }}

),

requests as (

    select * from {{ ref('int_recsys_eval__exposures_first_seen') }}

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
        -- the item is in the kept exposure's list (checked on the list: no item rows)
        {{ recsys_eval.exposure_list_contains_item('requests.items', 'outcomes.item_id') }} as is_item_shown,
        outcomes.load_seq,
        outcomes.line_no

    from outcomes
    left join requests
        on outcomes.request_id = requests.request_id

)

select * from joined
