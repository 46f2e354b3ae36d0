{{ config(enabled=recsys_eval.using_source('rankers')) }}
{%- set interleaving = recsys_eval.interleaving_config() %}

with

outcomes as (

    select * from {{ ref('stg_recsys_eval__outcomes') }}

),

{% if interleaving.source == 'logged' -%}
logged_lists as (

    select * from {{ ref('stg_recsys_eval__interleaved_exposures') }}

),

logged_list_keys as (

    -- the same relation imported twice: each CTE is read once, so DuckDB streams both instead of
    -- materializing the lists
    select * from {{ ref('stg_recsys_eval__interleaved_exposures') }}

),
{%- else -%}
shown_items as (

    select * from {{ ref('int_recsys_eval__interleaving_shown_items') }}

),
{%- endif %}

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

{% if interleaving.source == 'logged' -%}
clicked_requests as (

    select distinct request_id
    from clicks

),

clicked_request_lists as (

    -- the first logged list wins for a duplicated request_id, as in
    -- int_recsys_eval__interleaving_impressions (only the clicked requests, narrow columns)
    select
        logged_list_keys.request_id,
        logged_list_keys.load_seq,
        logged_list_keys.line_no,
        row_number() over (
            partition by logged_list_keys.request_id
            order by logged_list_keys.load_seq, logged_list_keys.line_no
        ) as occurrence_rank

    from logged_list_keys
    inner join clicked_requests
        on logged_list_keys.request_id = clicked_requests.request_id

),

first_lists as (

    select * from clicked_request_lists
    where occurrence_rank = 1

),

clicked_lists as (

    -- the impression's own (first) list of every clicked item: lists, not item rows
    select
        clicks.request_id,
        clicks.item_id,
        clicks.clicks,
        logged_lists.items

    from clicks
    inner join first_lists
        on clicks.request_id = first_lists.request_id
    inner join logged_lists
        on
            first_lists.load_seq = logged_lists.load_seq
            and first_lists.line_no = logged_lists.line_no

),

clicked_entries as (

    select
        request_id,
        item_id,
        clicks,
        {{ recsys_eval.interleaving_item_entries('items', 'item_id') }} as item_entries

    from clicked_lists

),

located as (

    -- the logged rank is the slot; an item logged twice in one list is credited once, to the team
    -- of its first slot (rank, then array position)
    select
        request_id,
        item_id,
        clicks,
        item_entries,
        {{ recsys_eval.interleaving_min_rank('item_entries') }} as slot

    from clicked_entries
    where {{ recsys_eval.array_length('item_entries') }} > 0

),

credited as (

    -- clicks on items that were not shown earn nothing (filtered above)
    select
        request_id,
        slot,
        item_id,
        {{ recsys_eval.interleaving_team_at_rank('item_entries', 'slot') }} as team,
        clicks

    from located

),
{%- else -%}
credited as (

    -- clicks on items that were not shown earn nothing (inner join)
    select
        shown_items.request_id,
        shown_items.slot,
        shown_items.item_id,
        shown_items.team,
        clicks.clicks

    from shown_items
    inner join clicks
        on
            shown_items.request_id = clicks.request_id
            and shown_items.item_id = clicks.item_id

),
{%- endif %}

final as (

    select
        request_id,
        cast(slot as {{ dbt.type_bigint() }}) as slot,
        item_id,
        team,
        cast(clicks as {{ dbt.type_bigint() }}) as clicks

    from credited

)

select * from final
