{%- set specs = recsys_eval.offline_metric_specs() %}
{%- set dialect = recsys_eval.offline_dialect() %}
{%- set dataset_ks = specs | selectattr('kind', 'equalto', 'dataset') | map(attribute='k') | unique | list %}
{#- the Lk occurrences of the spec's k (without dataset specs no join row ever reaches it) -#}
{%- set occurrence_cases = [] -%}
{%- for k in dataset_ks -%}
{%- do occurrence_cases.append('when ' ~ k ~ ' then scoped_item_counts.top_' ~ k ~ '_occurrences') -%}
{%- endfor -%}
{%- if dataset_ks | length == 0 -%}
{%- set offline_top_k_occurrences = 'cast(0 as ' ~ dbt.type_bigint() ~ ')' -%}
{%- else -%}
{%- set offline_top_k_occurrences = 'case metric_specs.k ' ~ (occurrence_cases | join(' ')) ~ ' end' -%}
{%- endif %}
-- the per-case values are fct_offline_request_metrics' (the same macro); it is built first and with it:
-- depends_on: {{ ref('fct_offline_request_metrics') }}

with

cases as (

    select * from {{ ref('int_recsys_eval__offline_cases') }}

),

relevance as (

    select * from {{ ref('int_recsys_eval__offline_relevance') }}

),

metric_specs as (

    -- every family of var recsys_eval__offline_metrics, in configured order
    {{ recsys_eval.offline_metric_specs_sql(specs) }}

),

----------  scopes: the global population and each segment's cases (reference §4.8)

scoped_cases as (

    select
        'global' as scope,
        '__all__' as segment_key,
        request_id,
        is_evaluated

    from cases

    union all

    select
        'segment' as scope,
        segment_key,
        request_id,
        is_evaluated

    from cases

),

scopes as (

    -- the global scope exists even without cases (every value is then 0); segments only with cases
    select
        'global' as scope,
        '__all__' as segment_key

    union all

    select distinct
        'segment' as scope,
        segment_key

    from cases

),

scope_cases as (

    select
        scopes.scope,
        scopes.segment_key,
        count(scoped_cases.request_id) as cases,
        -- the cases the per-case families average over (all of them in the reference dialect)
        sum(case when scoped_cases.is_evaluated then 1 else 0 end) as evaluated_cases

    from scopes
    left join scoped_cases
        on
            scopes.scope = scoped_cases.scope
            and scopes.segment_key = scoped_cases.segment_key
    group by
        scopes.scope,
        scopes.segment_key

),

----------  per-case families: the arithmetic mean over the scope's cases

relevant_case_specs as (

    -- the evaluated cases with a relevant item x the per-case specs: a case without one scores 0 in every
    -- per-case family (no hit, no AP or DCG term, no first hit), so it adds nothing to the sums
    select
        {{ recsys_eval.offline_case_spec_columns('cases', 'metric_specs') }}

    from cases
    inner join metric_specs
        on metric_specs.metric_kind = 'per_case'
    where cases.is_evaluated and cases.relevant_count > 0

),

case_metrics as (

    -- the cases' rows of fct_offline_request_metrics, computed by the same macro as it goes
    {{ recsys_eval.offline_case_metrics_sql('relevant_case_specs', dialect) }}  -- noqa: PRS

),

segment_case_sums as (

    -- the case metrics carry the case's segment: no join; the global sums add up the segments
    select
        segment_key,
        metric_position,
        {{ recsys_eval.exact_sum('metric_value') }} as metric_value_sum

    from case_metrics
    group by
        segment_key,
        metric_position

),

per_case_sums as (

    select
        'segment' as scope,
        segment_key,
        metric_position,
        metric_value_sum
    from segment_case_sums

    union all

    select
        'global' as scope,
        '__all__' as segment_key,
        metric_position,
        {{ recsys_eval.exact_sum('metric_value_sum') }} as metric_value_sum
    from segment_case_sums
    group by metric_position

),

----------  dataset families (reference §4.5): empty item ids are ignored throughout

segment_ids as (

    -- a small integer per segment key, so the item aggregate below groups by (integer, item)
    select
        segment_key,
        row_number() over (order by segment_key) as segment_id

    from (select distinct segment_key from cases) as segment_keys

),

numbered_lists as (

    select
        segment_ids.segment_id,
        cases.item_ids

    from cases
    inner join segment_ids
        on cases.segment_key = segment_ids.segment_key

),

case_items as (

    -- the entries of every case's full L with their 1-based position in rank order, exploded as the
    -- mart goes (no item-level table)
    {{ recsys_eval.unnest_list_with_position('numbered_lists', 'item_ids', 'item_id', 'item_position') }}

),

segment_id_item_counts as (

    -- one pass over the case items: per segment and item, its occurrences in the full lists and in
    -- the first k positions of each configured dataset k (one column per k: templated, so the layout
    -- rule cannot see the loop's commas)
    -- noqa: disable=LT02
    select
        segment_id,
        item_id,
        count(*) as popularity
        {%- for k in dataset_ks %},
        sum(case when item_position <= {{ k }} then 1 else 0 end) as top_{{ k }}_occurrences
        {%- endfor %}

    from case_items
    where item_id != ''
    group by
        segment_id,
        item_id

),

segment_item_counts as (

    select
        segment_ids.segment_key,
        segment_id_item_counts.item_id,
        segment_id_item_counts.popularity
        {%- for k in dataset_ks %},
        segment_id_item_counts.top_{{ k }}_occurrences
        {%- endfor %}

    from segment_id_item_counts
    inner join segment_ids
        on segment_id_item_counts.segment_id = segment_ids.segment_id

),

scoped_item_counts as (

    select
        'segment' as scope,
        segment_key,
        item_id,
        popularity
        {%- for k in dataset_ks %},
        top_{{ k }}_occurrences
        {%- endfor %}
    from segment_item_counts

    union all

    select
        'global' as scope,
        '__all__' as segment_key,
        item_id,
        sum(popularity) as popularity
        {%- for k in dataset_ks %},
        sum(top_{{ k }}_occurrences) as top_{{ k }}_occurrences
        {%- endfor %}
    from segment_item_counts
    group by item_id
    -- noqa: enable=LT02

),

segment_relevant_items as (

    select distinct
        cases.segment_key,
        relevance.item_id

    from relevance
    inner join cases
        on relevance.request_id = cases.request_id
    where relevance.is_relevant and relevance.item_id != ''

),

item_universe as (

    -- coverage denominator: distinct items in some full L or some R
    select
        scope,
        segment_key,
        count(distinct item_id) as universe_items

    from (
        select
            scope,
            segment_key,
            item_id
        from scoped_item_counts

        union all

        select
            'segment' as scope,
            segment_key,
            item_id
        from segment_relevant_items

        union all

        select
            'global' as scope,
            '__all__' as segment_key,
            item_id
        from segment_relevant_items
    ) as listed_or_relevant
    group by
        scope,
        segment_key

),

popularity_totals as (

    select
        scope,
        segment_key,
        sum(popularity) as total_popularity

    from scoped_item_counts
    group by
        scope,
        segment_key

),

top_k_item_counts as (

    -- per scope, dataset spec and item: its occurrences in the Lk lists (items with none dropped)
    select
        scoped_item_counts.scope,
        scoped_item_counts.segment_key,
        metric_specs.metric_position,
        scoped_item_counts.item_id,
        scoped_item_counts.popularity,
        {{ offline_top_k_occurrences }} as item_occurrences

    from scoped_item_counts
    inner join metric_specs
        on metric_specs.metric_kind = 'dataset'
    where
        {{ offline_top_k_occurrences }} > 0

),

top_k_totals as (

    select
        scope,
        segment_key,
        metric_position,
        count(*) as covered_items,
        sum(item_occurrences) as occurrences

    from top_k_item_counts
    group by
        scope,
        segment_key,
        metric_position

),

top_k_entropy as (

    select
        top_k_item_counts.scope,
        top_k_item_counts.segment_key,
        top_k_item_counts.metric_position,
        {{ recsys_eval.exact_sum(recsys_eval.metric_entropy_term(
            'top_k_item_counts.item_occurrences', 'top_k_totals.occurrences')) }} as entropy,
        -- novelty: the mean over Lk occurrences of -log2(pop / T), summed per item
        {{ recsys_eval.exact_sum('top_k_item_counts.item_occurrences * ' ~ recsys_eval.metric_novelty_term(
            'top_k_item_counts.popularity', 'popularity_totals.total_popularity')) }} as novelty_sum

    from top_k_item_counts
    inner join top_k_totals
        on
            top_k_item_counts.scope = top_k_totals.scope
            and top_k_item_counts.segment_key = top_k_totals.segment_key
            and top_k_item_counts.metric_position = top_k_totals.metric_position
    inner join popularity_totals
        on
            top_k_item_counts.scope = popularity_totals.scope
            and top_k_item_counts.segment_key = popularity_totals.segment_key
    group by
        top_k_item_counts.scope,
        top_k_item_counts.segment_key,
        top_k_item_counts.metric_position

),

top_k_novelty as (

    select
        scope,
        segment_key,
        metric_position,
        novelty_sum

    from top_k_entropy

),

dataset_values as (

    select
        top_k_totals.scope,
        top_k_totals.segment_key,
        top_k_totals.metric_position,
        top_k_totals.covered_items,
        top_k_totals.occurrences,
        top_k_entropy.entropy,
        top_k_novelty.novelty_sum

    from top_k_totals
    inner join top_k_entropy
        on
            top_k_totals.scope = top_k_entropy.scope
            and top_k_totals.segment_key = top_k_entropy.segment_key
            and top_k_totals.metric_position = top_k_entropy.metric_position
    inner join top_k_novelty
        on
            top_k_totals.scope = top_k_novelty.scope
            and top_k_totals.segment_key = top_k_novelty.segment_key
            and top_k_totals.metric_position = top_k_novelty.metric_position

),

----------  one row per scope x configured metric

final as (

    select
        scope_cases.scope,
        scope_cases.segment_key,
        metric_specs.metric_position,
        metric_specs.metric_name,
        metric_specs.metric_family,
        metric_specs.k,
        metric_specs.metric_kind,
        cast(
            case metric_specs.metric_family
                when 'coverage' then {{ recsys_eval.metric_coverage(
                    'coalesce(dataset_values.covered_items, 0)', 'item_universe.universe_items') }}
                when 'novelty' then {{ recsys_eval.safe_divide(
                    'dataset_values.novelty_sum', 'dataset_values.occurrences') }}
                when 'diversity' then {{ recsys_eval.metric_diversity(
                    'dataset_values.entropy', 'dataset_values.occurrences', 'dataset_values.covered_items') }}
                else {{ recsys_eval.safe_divide(
                    'coalesce(per_case_sums.metric_value_sum, 0)', 'scope_cases.evaluated_cases') }}
            end as {{ recsys_eval.type_double() }}
        ) as metric_value,
        -- the cases the value is computed over
        case
            when metric_specs.metric_kind = 'per_case' then coalesce(scope_cases.evaluated_cases, 0)
            else scope_cases.cases
        end as cases

    from scope_cases
    cross join metric_specs
    left join per_case_sums
        on
            scope_cases.scope = per_case_sums.scope
            and scope_cases.segment_key = per_case_sums.segment_key
            and metric_specs.metric_position = per_case_sums.metric_position
    left join dataset_values
        on
            scope_cases.scope = dataset_values.scope
            and scope_cases.segment_key = dataset_values.segment_key
            and metric_specs.metric_position = dataset_values.metric_position
    left join item_universe
        on
            scope_cases.scope = item_universe.scope
            and scope_cases.segment_key = item_universe.segment_key

)

select * from final
