{%- set specs = recsys_eval.offline_metric_specs() | selectattr('kind', 'equalto', 'per_case') | list -%}
{%- set max_k = recsys_eval.offline_metric_max_k(specs) %}

with

cases as (

    select * from {{ ref('int_recsys_eval__offline_cases') }}

),

case_items as (

    select * from {{ ref('int_recsys_eval__offline_case_items') }}

),

metric_specs as (

    -- the per-case families of var recsys_eval__offline_metrics, in configured order
    {{ recsys_eval.offline_metric_specs_sql(specs) }}

),

positions as (

    select cast(generated_number as {{ dbt.type_bigint() }}) as ideal_length
    from ({{ dbt.generate_series(max_k) }}) as series

),

ideal_dcg as (

    -- IDCG of min(|R|, k) relevant items: the discounts of positions 1..ideal_length
    select
        ideal_length,
        sum({{ recsys_eval.metric_discount('ideal_length') }}) over (
            order by ideal_length
            rows between unbounded preceding and current row
        ) as ideal_dcg

    from positions

),

case_specs as (

    select
        cases.request_id,
        cases.segment_key,
        cases.list_length,
        cases.relevant_count,
        metric_specs.metric_position,
        metric_specs.metric_name,
        metric_specs.metric_family,
        metric_specs.k

    from cases
    cross join metric_specs

),

top_k as (

    -- the case's Lk (the first min(k, |L|) entries); cases with an empty list get no row here
    select
        case_specs.request_id,
        case_specs.metric_position,
        count(*) as list_length_at_k,
        sum(case when case_items.is_relevant then 1 else 0 end) as hits,
        sum(
            case
                when case_items.is_relevant
                    then {{ recsys_eval.metric_ap_term('case_items.cumulative_hits', 'case_items.item_position') }}
                else 0
            end
        ) as precision_sum,
        sum(
            case
                when case_items.is_relevant then {{ recsys_eval.metric_discount('case_items.item_position') }}
                else 0
            end
        ) as dcg,
        min(case when case_items.is_relevant then case_items.item_position end) as first_relevant_position

    from case_specs
    inner join case_items
        on
            case_specs.request_id = case_items.request_id
            and case_specs.k >= case_items.item_position
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
        coalesce(top_k.list_length_at_k, 0) as list_length_at_k,
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
        on least(case_specs.relevant_count, case_specs.k) = ideal_dcg.ideal_length

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
                when 'precision' then {{ recsys_eval.metric_precision('hits', 'list_length_at_k') }}
                when 'recall' then {{ recsys_eval.metric_recall('hits', 'relevant_count') }}
                when 'hitrate' then {{ recsys_eval.metric_hitrate('hits') }}
                when 'map' then {{ recsys_eval.metric_map('precision_sum', 'list_length', 'relevant_count', 'k') }}
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
