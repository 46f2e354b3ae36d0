{#- A view on DuckDB: fct_interleaving_impressions reads it once (one pass over the lists, no
    1M-row table written twice); a table elsewhere. -#}
{{ config(
    enabled=recsys_eval.using_source('rankers'),
    materialized=recsys_eval.view_on_duckdb()
) }}
-- depends_on: {{ ref('stg_recsys_eval__interleaved_exposures') }}
{%- set interleaving = recsys_eval.interleaving_config() %}

with

requests as (

    select * from {{ ref('int_recsys_eval__interleaving_requests') }}

),

{% if interleaving.source == 'logged' -%}
logged as (

    select * from {{ ref('stg_recsys_eval__interleaved_exposures') }}

),

logged_item_ids as (

    select
        *,
        {{ recsys_eval.interleaving_item_ids('items') }} as item_ids

    from logged

),

logged_distinct as (

    select
        *,
        {{ recsys_eval.array_distinct_count('item_ids') }} as distinct_items  -- noqa: PRS

    from logged_item_ids

),

logged_uniqueness as (

    select
        *,
        -- no item_id repeats: every ranked entry is its item's first slot (no pairwise check)
        distinct_items = item_count as items_unique

    from logged_distinct

),

logged_facts as (

    -- the list's facts computed on the array (no item rows), before the dedup so that only
    -- narrow columns go through the window below
    select
        request_id,
        interleaved_exposure_row_id,
        user_id,
        {{ recsys_eval.segment_key('context', interleaving.slice_keys) }} as segment_key,
        exposed_at,
        algorithm,
        load_seq,
        line_no,
        distinct_items as items_shown,
        {{ recsys_eval.interleaving_team_item_count('items', 'A', 'items_unique') }} as team_a_items,  -- noqa: PRS
        {{ recsys_eval.interleaving_team_item_count('items', 'B', 'items_unique') }} as team_b_items,  -- noqa: PRS
        {{ recsys_eval.interleaving_min_rank('items') }} as first_slot,
        items

    from logged_uniqueness

),

logged_first_team as (

    select
        request_id,
        interleaved_exposure_row_id,
        user_id,
        segment_key,
        exposed_at,
        algorithm,
        load_seq,
        line_no,
        items_shown,
        team_a_items,
        team_b_items,
        {{ recsys_eval.interleaving_team_at_rank('items', 'first_slot') }} as first_team

    from logged_facts

),

logged_ranked as (

    -- the first logged list wins for a duplicated request_id (as the first exposure wins, §2.3)
    select
        *,
        row_number() over (partition by request_id order by load_seq, line_no) as occurrence_rank

    from logged_first_team

),

impressions as (

    select
        logged_ranked.request_id,
        logged_ranked.interleaved_exposure_row_id as source_row_id,
        logged_ranked.user_id,
        logged_ranked.segment_key,
        logged_ranked.exposed_at as impressed_at,
        'logged' as source,  -- noqa: RF04
        case
            when logged_ranked.algorithm = '' then '{{ interleaving.algorithm }}'
            else logged_ranked.algorithm
        end as algorithm,
        -- known only when the rankers' own lists were loaded too
        requests.rankers_agree,
        logged_ranked.items_shown,
        logged_ranked.team_a_items,
        logged_ranked.team_b_items,
        logged_ranked.first_team

    from logged_ranked
    left join requests
        on logged_ranked.request_id = requests.request_id
    where logged_ranked.occurrence_rank = 1

),
{%- else -%}
simulated_items as (

    select * from {{ ref('int_recsys_eval__interleaving_simulated_items') }}

),

list_facts as (

    select
        request_id,
        count(*) as items_shown,
        sum(case when team = 'A' then 1 else 0 end) as team_a_items,
        sum(case when team = 'B' then 1 else 0 end) as team_b_items,
        {{ recsys_eval.arg_min_value('team', 'slot') }} as first_team

    from simulated_items
    group by request_id

),

impressions as (

    -- the reference's path: every request on both sides is re-simulated (logged lists unused)
    select
        requests.request_id,
        requests.request_id as source_row_id,
        requests.user_id,
        {{ recsys_eval.segment_key('requests.context', interleaving.slice_keys) }} as segment_key,
        requests.ranked_at as impressed_at,
        'simulated' as source,  -- noqa: RF04
        '{{ interleaving.algorithm }}' as algorithm,
        requests.rankers_agree,
        list_facts.items_shown,
        list_facts.team_a_items,
        list_facts.team_b_items,
        list_facts.first_team

    from requests
    left join list_facts
        on requests.request_id = list_facts.request_id

),
{%- endif %}

final as (

    select
        request_id,
        source_row_id,
        user_id,
        segment_key,
        impressed_at,
        source,
        algorithm,
        rankers_agree,
        cast(coalesce(items_shown, 0) as {{ dbt.type_bigint() }}) as items_shown,
        cast(coalesce(team_a_items, 0) as {{ dbt.type_bigint() }}) as team_a_items,
        cast(coalesce(team_b_items, 0) as {{ dbt.type_bigint() }}) as team_b_items,
        first_team

    from impressions

)

select * from final
