{%- set specs = recsys_eval.offline_metric_specs() | selectattr('kind', 'equalto', 'per_case') | list -%}
{%- set dialect = recsys_eval.offline_dialect() %}

with

cases as (

    select * from {{ ref('int_recsys_eval__offline_cases') }}

),

case_items as (

    select * from {{ ref('int_recsys_eval__offline_case_items') }}

),

relevance as (

    select * from {{ ref('int_recsys_eval__offline_relevance') }}

),

metric_specs as (

    -- the per-case families of var recsys_eval__offline_metrics, in configured order
    {{ recsys_eval.offline_metric_specs_sql(specs) }}

),

case_specs as (

    -- the evaluated cases (all of them in the reference dialect) x the per-case specs
    select
        cases.request_id,
        cases.segment_key,
        cases.list_length,
        cases.relevant_count,
        cases.ranked_length,
        metric_specs.metric_position,
        metric_specs.metric_name,
        metric_specs.metric_family,
        metric_specs.k

    from cases
    cross join metric_specs
    where cases.is_evaluated

),

ideal_dcg as (

    -- IDCG@k: the gains of R in decreasing order over positions 1..min(|R|, k), even when L is shorter
    select
        case_specs.request_id,
        case_specs.metric_position,
        sum(relevance.gain * {{ recsys_eval.metric_discount('relevance.ideal_position') }}) as ideal_dcg

    from case_specs
    inner join relevance
        on
            case_specs.request_id = relevance.request_id
            and case_specs.k >= relevance.ideal_position
    where relevance.is_relevant
    group by
        case_specs.request_id,
        case_specs.metric_position

),

relevant_entries as (

    -- only relevant ranked entries add to hits, AP, DCG (gain is 0 otherwise) and the first hit;
    -- cumulative_hits = relevant ranked entries up to this one (a window over ~3 % of the entries)
    select
        request_id,
        rank_position,
        gain,
        row_number() over (partition by request_id order by rank_position) as cumulative_hits

    from case_items
    where is_relevant and rank_position is not null

),

top_k as (

    -- the relevant entries of the case's Lk (its first k ranked entries)
    select
        case_specs.request_id,
        case_specs.metric_position,
        count(*) as hits,
        sum({{ recsys_eval.metric_ap_term('relevant_entries.cumulative_hits', 'relevant_entries.rank_position') }})
            as precision_sum,
        sum(relevant_entries.gain * {{ recsys_eval.metric_discount('relevant_entries.rank_position') }}) as dcg,
        min(relevant_entries.rank_position) as first_relevant_position

    from case_specs
    inner join relevant_entries
        on
            case_specs.request_id = relevant_entries.request_id
            and case_specs.k >= relevant_entries.rank_position
    group by
        case_specs.request_id,
        case_specs.metric_position

),

inputs as (

    select
        case_specs.request_id,
        case_specs.segment_key,
        case_specs.metric_position,
        case_specs.metric_name,
        case_specs.metric_family,
        case_specs.k,
        case_specs.list_length,
        case_specs.relevant_count,
        -- |Lk| = min(k, ranked entries)
        case when case_specs.ranked_length < case_specs.k then case_specs.ranked_length else case_specs.k end
            as list_length_at_k,
        coalesce(top_k.hits, 0) as hits,
        coalesce(top_k.precision_sum, 0) as precision_sum,
        coalesce(top_k.dcg, 0) as dcg,
        coalesce(ideal_dcg.ideal_dcg, 0) as idcg,
        top_k.first_relevant_position

    from case_specs
    left join top_k
        on
            case_specs.request_id = top_k.request_id
            and case_specs.metric_position = top_k.metric_position
    left join ideal_dcg
        on
            case_specs.request_id = ideal_dcg.request_id
            and case_specs.metric_position = ideal_dcg.metric_position

),

final as (

    select
        request_id,
        segment_key,
        metric_position,
        metric_name,
        metric_family,
        k,
        cast(
            case metric_family
                when 'precision' then {{ recsys_eval.metric_precision('hits', 'list_length_at_k', 'k', dialect) }}
                when 'recall' then {{ recsys_eval.metric_recall('hits', 'relevant_count') }}
                when 'hitrate' then {{ recsys_eval.metric_hitrate('hits') }}
                when 'map'
                    then {{ recsys_eval.metric_map('precision_sum', 'list_length', 'relevant_count', 'k', dialect) }}
                when 'ndcg' then {{ recsys_eval.metric_ndcg('dcg', 'idcg', 'list_length', 'relevant_count') }}
                when 'mrr' then {{ recsys_eval.metric_mrr('first_relevant_position') }}
            end as {{ recsys_eval.type_double() }}
        ) as metric_value,
        list_length,
        list_length_at_k,
        relevant_count,
        hits,
        first_relevant_position

    from inputs

)

select * from final
