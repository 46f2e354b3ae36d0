{%- set dialect = recsys_eval.offline_dialect() %}

with

requests as (

    select * from {{ ref('int_recsys_eval__requests') }}

),

relevance as (

    select * from {{ ref('int_recsys_eval__offline_relevance') }}

),

case_items as (

    select * from {{ ref('int_recsys_eval__offline_case_items') }}

),

relevant_counts as (

    -- |R|: the distinct items with a positive gain (reference §4.2); judged: any click / conversion
    select
        request_id,
        count(*) as judged_count,
        sum(case when is_relevant then 1 else 0 end) as relevant_count

    from relevance
    group by request_id

),

ranked_lengths as (

    -- entries that take part in the ranking (every entry in the reference dialect; first occurrences
    -- of non-empty item ids in the trec dialect)
    select
        request_id,
        count(rank_position) as ranked_length

    from case_items
    group by request_id

),

cases as (

    select
        requests.request_id,
        requests.exposure_row_id,
        requests.segment_key,
        requests.item_count as list_length,
        coalesce(ranked_lengths.ranked_length, 0) as ranked_length,
        coalesce(relevant_counts.relevant_count, 0) as relevant_count,
        coalesce(relevant_counts.judged_count, 0) as judged_count,
        requests.exposed_at

    from requests
    left join relevant_counts
        on requests.request_id = relevant_counts.request_id
    left join ranked_lengths
        on requests.request_id = ranked_lengths.request_id

),

final as (

    select
        *,
        {% if dialect == 'trec' -%}
        -- trec_eval evaluates a query only when it is in both the run and the qrels: a ranked item and
        -- a judged one (a judged item of gain 0 counts, as a 0 in the qrels does)
        judged_count > 0 and ranked_length > 0
        {%- else -%}
        -- the reference averages over every case
        1 = 1
        {%- endif %} as is_evaluated

    from cases

)

select * from final
