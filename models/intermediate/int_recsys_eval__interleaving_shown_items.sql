{#- A view on DuckDB: fct_interleaving_credits reads it once (the simulated walk's items are not
    written a second time as a table); a table elsewhere. -#}
{{ config(
    enabled=recsys_eval.using_source('rankers'),
    materialized=recsys_eval.view_on_duckdb()
) }}
-- depends_on: {{ ref('int_recsys_eval__interleaving_simulated_items') }}
-- depends_on: {{ ref('stg_recsys_eval__interleaved_exposures') }}
-- depends_on: {{ ref('int_recsys_eval__interleaving_impressions') }}
{%- set interleaving = recsys_eval.interleaving_config() %}

with

{% if interleaving.source == 'logged' -%}
impressions as (

    select * from {{ ref('int_recsys_eval__interleaving_impressions') }}

),

logged_lists as (

    select * from {{ ref('stg_recsys_eval__interleaved_exposures') }}

),

impression_lists as (

    -- only the list that won for its request_id (joined before unnesting: lists, not items)
    select
        logged_lists.request_id,
        logged_lists.items

    from logged_lists
    inner join impressions
        on logged_lists.interleaved_exposure_row_id = impressions.source_row_id

),

impression_items as (

    {{ recsys_eval.unnest_with_ordinality('impression_lists', 'items', 'shown_item', 'item_position') }}

),

logged_items as (

    select
        request_id,
        coalesce({{ recsys_eval.struct_field('shown_item', 'item_id') }}, '') as item_id,
        upper(coalesce({{ recsys_eval.struct_field('shown_item', 'team') }}, '')) as team,
        {{ recsys_eval.struct_field('shown_item', 'rank') }} as item_rank,
        -- display order: rank, then array position
        {{ recsys_eval.struct_field('shown_item', 'rank') }} * 1000000 + item_position as display_order

    from impression_items

),

shown as (

    -- the logged rank is the slot; an item logged twice in one list is credited once, to the team
    -- of its first slot
    select
        request_id,
        min(item_rank) as slot,
        item_id,
        {{ recsys_eval.arg_min_value('team', 'display_order') }} as team

    from logged_items
    group by
        request_id,
        item_id

),
{%- else -%}
simulated_items as (

    select * from {{ ref('int_recsys_eval__interleaving_simulated_items') }}

),

shown as (

    select
        request_id,
        slot,
        item_id,
        team

    from simulated_items

),
{%- endif %}

final as (

    select
        request_id,
        cast(slot as {{ dbt.type_bigint() }}) as slot,
        item_id,
        team

    from shown

)

select * from final
