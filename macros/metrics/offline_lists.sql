{#-
    Offline list helpers: the facts of one offline case computed on its lists, so no model explodes the
    exposure lists into item rows and aggregates them back (reference §4.2-§4.4). The semantics are
    those of the item rows: L = the exposure's entries in stable rank order (rank ascending, a missing
    rank read as 0, ties in array order, a missing item_id read as ''); the trec dialect ranks only the
    first occurrence of every non-empty id. Positions are 1-based everywhere.
    DuckDB: list functions with `lambda x:`; default: Spark's higher-order functions (`x ->`, 0-based
    lambda indexes, hence the + 1).
-#}

{#- offline_rank_ordered_ids(items_expression): the item ids of an exposure list (array of struct
    item_id, rank, ...) in stable rank order; null for a null list. -#}
{% macro offline_rank_ordered_ids(items_expression) -%}
    {{ return(adapter.dispatch('offline_rank_ordered_ids', 'recsys_eval')(items_expression)) }}
{%- endmacro %}

{% macro default__offline_rank_ordered_ids(items_expression) -%}
    transform(
        array_sort(transform(
            {{ items_expression }},
            (list_entry, entry_index) -> named_struct(
                'entry_rank', coalesce(list_entry.rank, 0),
                'entry_index', entry_index,
                'entry_item_id', coalesce(list_entry.item_id, '')
            )
        )),
        sorted_entry -> sorted_entry.entry_item_id
    )
{%- endmacro %}

{% macro duckdb__offline_rank_ordered_ids(items_expression) -%}
    -- most lists are ranked 1..n already: their array order is the rank order, no sort needed
    case
        when list_bool_and(list_transform(
            {{ items_expression }}, lambda list_entry, entry_index: coalesce(list_entry.rank, 0) = entry_index
        ))
            then list_transform({{ items_expression }}, lambda list_entry: coalesce(list_entry.item_id, ''))
        else list_transform(
            list_sort(list_transform(
                {{ items_expression }},
                lambda list_entry, entry_index: {
                    'entry_rank': coalesce(list_entry.rank, 0),
                    'entry_index': entry_index,
                    'entry_item_id': coalesce(list_entry.item_id, '')
                }
            )),
            lambda sorted_entry: sorted_entry.entry_item_id
        )
    end
{%- endmacro %}


{#- offline_first_occurrences(ids_expression): the trec ranking of a list of ids: the first occurrence
    of every non-empty id, in list order. -#}
{% macro offline_first_occurrences(ids_expression) -%}
    {{ return(adapter.dispatch('offline_first_occurrences', 'recsys_eval')(ids_expression)) }}
{%- endmacro %}

{% macro default__offline_first_occurrences(ids_expression) -%}
    filter(
        {{ ids_expression }},
        (entry_id, entry_index) -> entry_id != ''
            and array_position({{ ids_expression }}, entry_id) = entry_index + 1
    )
{%- endmacro %}

{% macro duckdb__offline_first_occurrences(ids_expression) -%}
    list_filter(
        {{ ids_expression }},
        lambda entry_id, entry_index: entry_id != '' and list_position({{ ids_expression }}, entry_id) = entry_index
    )
{%- endmacro %}


{#- offline_ordered_list(value, order_by, condition=none): aggregate: the group's values sorted by
    order_by (unique within the group), only the rows where condition holds when given; null or
    empty when no row qualifies. The groups are small: their lists are sorted after the aggregate
    (DuckDB's ordered aggregates sort the whole input). -#}
{% macro offline_ordered_list(value, order_by, condition=none) -%}
    {{ return(adapter.dispatch('offline_ordered_list', 'recsys_eval')(value, order_by, condition)) }}
{%- endmacro %}

{% macro default__offline_ordered_list(value, order_by, condition=none) -%}
    transform(
        array_sort(collect_list(
            {%- if condition is not none %}
            case when {{ condition }} then named_struct('sort_key', {{ order_by }}, 'sort_value', {{ value }}) end
            {%- else %}
            named_struct('sort_key', {{ order_by }}, 'sort_value', {{ value }})
            {%- endif %}
        )),
        sorted_entry -> sorted_entry.sort_value
    )
{%- endmacro %}

{% macro duckdb__offline_ordered_list(value, order_by, condition=none) -%}
    list_transform(
        list_sort(
            list({'sort_key': {{ order_by }}, 'sort_value': {{ value }}})
            {%- if condition is not none %} filter (where {{ condition }}){% endif %}
        ),
        lambda sorted_entry: sorted_entry.sort_value
    )
{%- endmacro %}


{#- offline_pair_list(key, value): aggregate: the group's (entry_key, entry_value) pairs as a list of
    structs, in no particular order (a lookup table: keys unique within the group). -#}
{% macro offline_pair_list(key, value) -%}
    {{ return(adapter.dispatch('offline_pair_list', 'recsys_eval')(key, value)) }}
{%- endmacro %}

{% macro default__offline_pair_list(key, value) -%}
    collect_list(named_struct('entry_key', {{ key }}, 'entry_value', {{ value }}))
{%- endmacro %}

{% macro duckdb__offline_pair_list(key, value) -%}
    list({'entry_key': {{ key }}, 'entry_value': {{ value }}})
{%- endmacro %}


{#- offline_list_field(list_expression, field): one field of every struct of a list, in order. -#}
{% macro offline_list_field(list_expression, field) -%}
    {{ return(adapter.dispatch('offline_list_field', 'recsys_eval')(list_expression, field)) }}
{%- endmacro %}

{% macro default__offline_list_field(list_expression, field) -%}
    transform({{ list_expression }}, list_entry -> list_entry.{{ field }})
{%- endmacro %}

{% macro duckdb__offline_list_field(list_expression, field) -%}
    list_transform({{ list_expression }}, lambda list_entry: list_entry.{{ field }})
{%- endmacro %}


{#- offline_lookup_gains(ids_expression, keys_expression, gains_expression): per id of the list, the
    gain at its position in keys_expression (the judged item ids, each once), 0 when not judged. -#}
{% macro offline_lookup_gains(ids_expression, keys_expression, gains_expression) -%}
    {{ return(adapter.dispatch('offline_lookup_gains', 'recsys_eval')(
        ids_expression, keys_expression, gains_expression)) }}
{%- endmacro %}

{% macro default__offline_lookup_gains(ids_expression, keys_expression, gains_expression) -%}
    transform(
        {{ ids_expression }},
        entry_id -> case
            when coalesce(array_position({{ keys_expression }}, entry_id), 0) > 0
                then element_at({{ gains_expression }}, cast(array_position({{ keys_expression }}, entry_id) as int))
            else cast(0 as {{ recsys_eval.type_double() }})
        end
    )
{%- endmacro %}

{% macro duckdb__offline_lookup_gains(ids_expression, keys_expression, gains_expression) -%}
    list_transform(
        {{ ids_expression }},
        lambda entry_id: coalesce(
            {{ gains_expression }}[list_position({{ keys_expression }}, entry_id)],
            cast(0 as {{ recsys_eval.type_double() }})
        )
    )
{%- endmacro %}


{#- offline_positive_positions(gains_expression): the 1-based positions of the positive gains, in
    order (the relevant entries' ranks). -#}
{% macro offline_positive_positions(gains_expression) -%}
    {{ return(adapter.dispatch('offline_positive_positions', 'recsys_eval')(gains_expression)) }}
{%- endmacro %}

{% macro default__offline_positive_positions(gains_expression) -%}
    filter(
        transform({{ gains_expression }}, (entry_gain, entry_index) -> case when entry_gain > 0 then entry_index + 1 end),
        entry_position -> entry_position is not null
    )
{%- endmacro %}

{% macro duckdb__offline_positive_positions(gains_expression) -%}
    list_filter(
        list_transform({{ gains_expression }}, lambda entry_gain, entry_index: case when entry_gain > 0 then entry_index end),
        lambda entry_position: entry_position is not null
    )
{%- endmacro %}


{#- offline_positive_values(gains_expression): the positive gains, in order. -#}
{% macro offline_positive_values(gains_expression) -%}
    {{ return(adapter.dispatch('offline_positive_values', 'recsys_eval')(gains_expression)) }}
{%- endmacro %}

{% macro default__offline_positive_values(gains_expression) -%}
    filter({{ gains_expression }}, entry_gain -> entry_gain > 0)
{%- endmacro %}

{% macro duckdb__offline_positive_values(gains_expression) -%}
    list_filter({{ gains_expression }}, lambda entry_gain: entry_gain > 0)
{%- endmacro %}


{#-
    Per-case facts at a cutoff k from relevant_ranks (the ascending ranks of the relevant entries),
    relevant_gains (their gains, same order) and ideal_gains (R's gains in ideal order). Null lists
    read as empty. The terms are the formulas' own (metric_ap_term, metric_discount).
-#}

{#- offline_hits_at_k(ranks, k): relevant entries within the first k ranks (a bigint). -#}
{% macro offline_hits_at_k(ranks, k) -%}
    {{ return(adapter.dispatch('offline_hits_at_k', 'recsys_eval')(ranks, k)) }}
{%- endmacro %}

{% macro default__offline_hits_at_k(ranks, k) -%}
    cast(coalesce(aggregate(
        {{ ranks }}, 0, (hit_count, entry_rank) -> hit_count + case when entry_rank <= {{ k }} then 1 else 0 end
    ), 0) as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro duckdb__offline_hits_at_k(ranks, k) -%}
    -- a null list is skipped before the lambda (most cases have no relevant entry)
    cast(case
        when {{ ranks }} is null then 0
        else len(list_filter({{ ranks }}, lambda entry_rank: entry_rank <= {{ k }}))
    end as {{ dbt.type_bigint() }})
{%- endmacro %}


{#- offline_precision_sum_at_k(ranks, k): sum over the relevant ranks i <= k of (hits among the
    first i) / i; the j-th relevant rank has j hits up to it. -#}
{% macro offline_precision_sum_at_k(ranks, k) -%}
    {{ return(adapter.dispatch('offline_precision_sum_at_k', 'recsys_eval')(ranks, k)) }}
{%- endmacro %}

{% macro default__offline_precision_sum_at_k(ranks, k) -%}
    {%- set terms -%}
        transform(
            {{ ranks }},
            (entry_rank, entry_index) -> case
                when entry_rank <= {{ k }} then {{ recsys_eval.metric_ap_term('entry_index + 1', 'entry_rank') }}
                else cast(0 as {{ recsys_eval.type_double() }})
            end
        )
    {%- endset -%}
    {{ recsys_eval.hof_double_sum(terms) }}
{%- endmacro %}

{% macro duckdb__offline_precision_sum_at_k(ranks, k) -%}
    case
        when {{ ranks }} is null then cast(0 as {{ recsys_eval.type_double() }})
        else coalesce(list_sum(list_transform(
            list_filter({{ ranks }}, lambda entry_rank: entry_rank <= {{ k }}),
            lambda entry_rank, entry_index: {{ recsys_eval.metric_ap_term('entry_index', 'entry_rank') }}
        )), cast(0 as {{ recsys_eval.type_double() }}))
    end
{%- endmacro %}


{#- offline_dcg_at_k(ranks, gains, k): sum over the relevant ranks i <= k of gain / log2(i + 1). -#}
{% macro offline_dcg_at_k(ranks, gains, k) -%}
    {{ return(adapter.dispatch('offline_dcg_at_k', 'recsys_eval')(ranks, gains, k)) }}
{%- endmacro %}

{% macro default__offline_dcg_at_k(ranks, gains, k) -%}
    {%- set terms -%}
        zip_with(
            {{ ranks }},
            {{ gains }},
            (entry_rank, entry_gain) -> case
                when entry_rank <= {{ k }} then entry_gain * {{ recsys_eval.metric_discount('entry_rank') }}
                else cast(0 as {{ recsys_eval.type_double() }})
            end
        )
    {%- endset -%}
    {{ recsys_eval.hof_double_sum(terms) }}
{%- endmacro %}

{% macro duckdb__offline_dcg_at_k(ranks, gains, k) -%}
    case
        when {{ ranks }} is null then cast(0 as {{ recsys_eval.type_double() }})
        else coalesce(list_sum(list_transform(
            list_filter({{ ranks }}, lambda entry_rank: entry_rank <= {{ k }}),
            lambda entry_rank, entry_index: {{ gains }}[entry_index] * {{ recsys_eval.metric_discount('entry_rank') }}
        )), cast(0 as {{ recsys_eval.type_double() }}))
    end
{%- endmacro %}


{#- offline_ideal_dcg_at_k(ideal_gains, k): the ideal DCG, R's gains in decreasing order over
    positions 1..min(|R|, k). -#}
{% macro offline_ideal_dcg_at_k(ideal_gains, k) -%}
    {{ return(adapter.dispatch('offline_ideal_dcg_at_k', 'recsys_eval')(ideal_gains, k)) }}
{%- endmacro %}

{% macro default__offline_ideal_dcg_at_k(ideal_gains, k) -%}
    {%- set terms -%}
        transform(
            {{ ideal_gains }},
            (entry_gain, entry_index) -> case
                when entry_index < {{ k }} then entry_gain * {{ recsys_eval.metric_discount('entry_index + 1') }}
                else cast(0 as {{ recsys_eval.type_double() }})
            end
        )
    {%- endset -%}
    {{ recsys_eval.hof_double_sum(terms) }}
{%- endmacro %}

{% macro duckdb__offline_ideal_dcg_at_k(ideal_gains, k) -%}
    case
        when {{ ideal_gains }} is null then cast(0 as {{ recsys_eval.type_double() }})
        else coalesce(list_sum(list_transform(
            {{ ideal_gains }}[1:{{ k }}],
            lambda entry_gain, entry_index: entry_gain * {{ recsys_eval.metric_discount('entry_index') }}
        )), cast(0 as {{ recsys_eval.type_double() }}))
    end
{%- endmacro %}


{#- offline_first_rank_at_k(ranks, k): the first relevant rank when it is <= k, else null. -#}
{% macro offline_first_rank_at_k(ranks, k) -%}
    {{ return(adapter.dispatch('offline_first_rank_at_k', 'recsys_eval')(ranks, k)) }}
{%- endmacro %}

{% macro default__offline_first_rank_at_k(ranks, k) -%}
    cast(array_min(filter({{ ranks }}, entry_rank -> entry_rank <= {{ k }})) as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro duckdb__offline_first_rank_at_k(ranks, k) -%}
    -- the ranks ascend: the first one, when it is within k
    cast(case when {{ ranks }}[1] <= {{ k }} then {{ ranks }}[1] end as {{ dbt.type_bigint() }})
{%- endmacro %}


{#-
    offline_case_metrics_sql(case_specs, dialect): a complete `select` with the columns of
    fct_offline_request_metrics (request_id, segment_key, metric_position, metric_name, metric_family,
    k, metric_value, list_length, list_length_at_k, relevant_count, hits, first_relevant_position), one
    row per row of case_specs: a relation of cases x per-case specs with the columns request_id,
    segment_key, metric_position, metric_name, metric_family, k, list_length, ranked_length,
    relevant_count, relevant_ranks, relevant_gains and ideal_gains. The mart and fct_offline_metrics'
    per-case sums both use it, so they compute the same values. Portable (dispatched helpers only).
-#}
{% macro offline_case_metrics_sql(case_specs, dialect) -%}
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

    from (
        -- the case's facts at k, from the ranks of its relevant entries (only they add to hits, AP,
        -- DCG and the first hit) and R's gains in ideal order (IDCG@k over positions 1..min(|R|, k),
        -- even when L is shorter)
        select
            request_id,
            segment_key,
            metric_position,
            metric_name,
            metric_family,
            k,
            list_length,
            relevant_count,
            -- |Lk| = min(k, ranked entries)
            case when ranked_length < k then ranked_length else k end as list_length_at_k,
            {{ recsys_eval.offline_hits_at_k('relevant_ranks', 'k') }} as hits,
            {{ recsys_eval.offline_precision_sum_at_k('relevant_ranks', 'k') }} as precision_sum,
            {{ recsys_eval.offline_dcg_at_k('relevant_ranks', 'relevant_gains', 'k') }} as dcg,
            {{ recsys_eval.offline_ideal_dcg_at_k('ideal_gains', 'k') }} as idcg,
            {{ recsys_eval.offline_first_rank_at_k('relevant_ranks', 'k') }} as first_relevant_position

        from {{ case_specs }}
    ) as case_facts
{%- endmacro %}


{#- The columns the per-case metric macro reads, as select-list items over `cases` (int_recsys_eval__offline_cases)
    joined to `specs` (the per-case metric specs): one list for fct_offline_request_metrics and fct_offline_metrics. -#}
{% macro offline_case_spec_columns(cases, specs) -%}
    {{ cases }}.request_id,
    {{ cases }}.segment_key,
    {{ cases }}.list_length,
    {{ cases }}.relevant_count,
    {{ cases }}.ranked_length,
    {{ cases }}.relevant_ranks,
    {{ cases }}.relevant_gains,
    {{ cases }}.ideal_gains,
    {{ specs }}.metric_position,
    {{ specs }}.metric_name,
    {{ specs }}.metric_family,
    {{ specs }}.k
{%- endmacro %}


{#- hof_double_sum(array_expression): the sum of an array of doubles with a higher-order fold
    (Spark's aggregate), 0 for a null or empty array; the one fold the default__ list metrics share
    (DuckDB bodies use list_sum). -#}
{% macro hof_double_sum(array_expression) -%}
    coalesce(aggregate(
        {{ array_expression }},
        cast(0 as {{ recsys_eval.type_double() }}),
        (term_sum, term) -> term_sum + term
    ), cast(0 as {{ recsys_eval.type_double() }}))
{%- endmacro %}
