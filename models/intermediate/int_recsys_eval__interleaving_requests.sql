{{ config(enabled=recsys_eval.using_source('rankers')) }}
{%- set interleaving = recsys_eval.interleaving_config() %}

with

ranker_a_lists as (

    select * from {{ ref('stg_recsys_eval__ranker_a_lists') }}

),

ranker_b_lists as (

    select * from {{ ref('stg_recsys_eval__ranker_b_lists') }}

),

ranker_a_ranked as (

    -- the last row wins for a duplicated request_id (reference §2.5)
    select
        *,
        row_number() over (partition by request_id order by load_seq desc, line_no desc) as recency_rank

    from ranker_a_lists

),

ranker_b_ranked as (

    select
        *,
        row_number() over (partition by request_id order by load_seq desc, line_no desc) as recency_rank

    from ranker_b_lists

),

ranker_a_latest as (

    select * from ranker_a_ranked
    where recency_rank = 1

),

ranker_b_latest as (

    select * from ranker_b_ranked
    where recency_rank = 1

),

paired as (

    -- evaluated requests are the intersection of the two sides (reference §2.5)
    select
        ranker_a_latest.request_id,
        ranker_a_latest.user_id,
        ranker_a_latest.context,
        ranker_a_latest.ranked_at,
        ranker_a_latest.items as items_a,
        ranker_b_latest.items as items_b,
        ranker_a_latest.item_count as items_a_count,
        ranker_b_latest.item_count as items_b_count

    from ranker_a_latest
    inner join ranker_b_latest
        on ranker_a_latest.request_id = ranker_b_latest.request_id

),

limited as (

    select
        *,
        -- the simulated list's length: max_results, or max(|A|, |B|) when max_results <= 0 (§7.1)
        {% if interleaving.max_results > 0 -%}
        cast({{ interleaving.max_results }} as {{ dbt.type_bigint() }})
        {%- else -%}
        case when items_a_count >= items_b_count then items_a_count else items_b_count end
        {%- endif %} as slot_limit

    from paired

),

final as (

    select
        request_id,
        user_id,
        context,
        ranked_at,
        items_a,
        items_b,
        items_a_count,
        items_b_count,
        slot_limit,
        -- both rankers put the same items in the same order in the slots shown: the coin alone
        -- decides the credit, so the impression says nothing about the rankers
        coalesce(
            {{ recsys_eval.array_prefix('items_a', 'slot_limit') }}
            = {{ recsys_eval.array_prefix('items_b', 'slot_limit') }},
            false
        ) as rankers_agree

    from limited

)

select * from final
