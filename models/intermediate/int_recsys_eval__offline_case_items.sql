{%- set dialect = recsys_eval.offline_dialect() %}

with

requests as (

    select * from {{ ref('int_recsys_eval__requests') }}

),

items as (

    select * from {{ ref('stg_recsys_eval__exposure_items') }}

),

relevance as (

    select * from {{ ref('int_recsys_eval__offline_relevance') }}

),

case_items as (

    -- L: the kept exposure's items in stable rank order (item_position); duplicates and empty ids kept
    select
        requests.request_id,
        requests.segment_key,
        items.item_position,
        items.item_id,
        coalesce(relevance.gain, 0) as gain,
        coalesce(relevance.is_relevant, false) as is_relevant{% if dialect == 'trec' %},
        row_number() over (
            partition by requests.request_id, items.item_id
            order by items.item_position
        ) as item_occurrence{% endif %}

    from requests
    inner join items
        on
            requests.load_seq = items.load_seq
            and requests.line_no = items.line_no
    left join relevance
        on
            requests.request_id = relevance.request_id
            and items.item_id = relevance.item_id

),

ranked_entries as (

    select
        *,
        {% if dialect == 'trec' -%}
        -- trec_eval ranks documents, not list slots: a repeated item counts once (first position) and
        -- an empty id is no document
        item_occurrence = 1 and item_id != ''
        {%- else -%}
        -- the reference ranks every entry, duplicates and empty ids included
        1 = 1
        {%- endif %} as is_ranked

    from case_items

),

ranked as (

    select
        *,
        -- the 1-based position the ranking metrics use (item_position in the reference dialect)
        {% if dialect == 'trec' -%}
        case
            when is_ranked
                then row_number() over (
                    partition by request_id, is_ranked
                    order by item_position
                )
        end
        {%- else -%}
        -- every entry is ranked: the position is item_position, no window needed
        item_position
        {%- endif %} as rank_position

    from ranked_entries

),

final as (

    select
        request_id,
        segment_key,
        item_position,
        item_id,
        gain,
        is_relevant,
        rank_position

    from ranked

)

select * from final
