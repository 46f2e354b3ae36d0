{%- set dialect = recsys_eval.offline_dialect() -%}
{#- DuckDB: a view (fct_offline_metrics reads it once and holds it in memory; writing the lists would
    cost more than building them); elsewhere a table. #}
{{ config(materialized=recsys_eval.view_on_duckdb()) }}
-- L is the kept exposure's stg_recsys_eval__exposure_items in item_position order, built on the list
-- itself; the item view stays in the lineage (and its tests in the selections that build this model):
-- depends_on: {{ ref('stg_recsys_eval__exposure_items') }}

with

exposures as (

    -- the kept exposure of every request_id: the case (the rows of int_recsys_eval__requests)
    select * from {{ ref('int_recsys_eval__exposures_first_seen') }}

),

relevance as (

    select * from {{ ref('int_recsys_eval__offline_relevance') }}

),

judged_pairs as (

    -- per case: |R| (distinct items with a positive gain, reference §4.2), the judged items (any click /
    -- conversion) with their gains, and R's gains in ideal order for the ideal DCG
    select
        request_id,
        count(*) as judged_count,
        sum(case when is_relevant then 1 else 0 end) as relevant_count,
        {{ recsys_eval.offline_pair_list('item_id', 'gain') }} as judged_items,
        {{ recsys_eval.offline_ordered_list('gain', 'ideal_position', 'is_relevant') }} as ideal_gains

    from relevance
    group by request_id

),

judged as (

    select
        request_id,
        judged_count,
        relevant_count,
        {{ recsys_eval.offline_list_field('judged_items', 'entry_key') }} as judged_item_ids,
        {{ recsys_eval.offline_list_field('judged_items', 'entry_value') }} as judged_gains,
        ideal_gains

    from judged_pairs

),

listed as (

    -- L: the kept exposure's item ids in stable rank order; duplicates and empty ids kept. The segment
    -- key is int_recsys_eval__requests' (the same macro over the same context)
    select
        request_id,
        exposure_row_id,
        {{ recsys_eval.segment_key('context', recsys_eval.config_var('recsys_eval__slice_keys', [])) }} as segment_key,
        item_count as list_length,
        {{ recsys_eval.offline_rank_ordered_ids('items') }} as item_ids,  -- noqa: PRS
        exposed_at

    from exposures

),

ranked as (

    select
        *,
        {% if dialect == 'trec' -%}
        -- trec_eval ranks documents, not list slots: a repeated item counts once (first position) and
        -- an empty id is no document
        {{ recsys_eval.offline_first_occurrences('item_ids') }}
        {%- else -%}
        -- the reference ranks every entry, duplicates and empty ids included
        item_ids
        {%- endif %} as ranked_item_ids

    from listed

),

gained as (

    -- the gain of every ranked entry (a duplicate counts every time it is ranked); cases without a
    -- relevant item have no relevant entry, so their lists are not looked up
    select
        ranked.request_id,
        ranked.exposure_row_id,
        ranked.segment_key,
        ranked.list_length,
        {{ recsys_eval.array_length('ranked.ranked_item_ids') }} as ranked_length,
        coalesce(judged.relevant_count, 0) as relevant_count,
        coalesce(judged.judged_count, 0) as judged_count,
        ranked.exposed_at,
        ranked.item_ids,
        case
            when judged.relevant_count > 0
                then {{ recsys_eval.offline_lookup_gains(
                    'ranked.ranked_item_ids', 'judged.judged_item_ids', 'judged.judged_gains') }}
        end as ranked_gains,
        judged.ideal_gains

    from ranked
    left join judged
        on ranked.request_id = judged.request_id

),

final as (

    select
        request_id,
        exposure_row_id,
        segment_key,
        list_length,
        ranked_length,
        relevant_count,
        judged_count,
        exposed_at,
        {% if dialect == 'trec' -%}
        -- trec_eval evaluates a query only when it is in both the run and the qrels: a ranked item and
        -- a judged one (a judged item of gain 0 counts, as a 0 in the qrels does)
        judged_count > 0 and ranked_length > 0
        {%- else -%}
        -- the reference averages over every case
        1 = 1
        {%- endif %} as is_evaluated,
        item_ids,
        {{ recsys_eval.offline_positive_positions('ranked_gains') }} as relevant_ranks,  -- noqa: PRS
        {{ recsys_eval.offline_positive_values('ranked_gains') }} as relevant_gains,
        ideal_gains

    from gained

)

select * from final
