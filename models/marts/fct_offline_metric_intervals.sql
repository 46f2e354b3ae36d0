{%- set bootstrap = recsys_eval.offline_bootstrap() -%}
{%- set alpha = (1 - bootstrap.ci_level) / 2 %}

with

cases as (

    select * from {{ ref('int_recsys_eval__offline_cases') }}

),

request_metrics as (

    select * from {{ ref('fct_offline_request_metrics') }}

),

metrics as (

    select * from {{ ref('fct_offline_metrics') }}

),

replicates as (

    -- 1..iterations when var recsys_eval__offline_bootstrap.enabled, else none (an empty mart)
    {% if bootstrap.enabled -%}
    select cast(generated_number as {{ dbt.type_bigint() }}) as replicate
    from ({{ dbt.generate_series(bootstrap.iterations) }}) as series
    {%- else -%}
    select cast(null as {{ dbt.type_bigint() }}) as replicate
    from (select 1 as placeholder) as disabled
    where 1 = 0
    {%- endif %}

),

case_weights as (

    -- Poisson bootstrap: every evaluated case gets an independent Poisson(1) weight per replicate, drawn
    -- from md5('<seed>|<request_id>|<replicate>'): the same on every engine and for any row order
    select
        cases.request_id,
        replicates.replicate,
        {{ recsys_eval.bootstrap_poisson_weight(recsys_eval.hash_uniform(
            recsys_eval.bootstrap_replicate_key(bootstrap.seed, 'cases.request_id', 'replicates.replicate'))) }}
            as weight

    from cases
    cross join replicates
    where cases.is_evaluated

),

drawn_cases as (

    select * from case_weights
    where weight > 0

),

segment_sums as (

    select
        request_metrics.segment_key,
        request_metrics.metric_position,
        drawn_cases.replicate,
        {{ recsys_eval.exact_sum('drawn_cases.weight * request_metrics.metric_value') }} as weighted_value_sum,
        sum(drawn_cases.weight) as weight_sum

    from request_metrics
    inner join drawn_cases
        on request_metrics.request_id = drawn_cases.request_id
    group by
        request_metrics.segment_key,
        request_metrics.metric_position,
        drawn_cases.replicate

),

replicate_means as (

    -- the weighted mean of a replicate; a replicate that drew no case has no row (it is skipped)
    select
        'global' as scope,
        '__all__' as segment_key,
        metric_position,
        replicate,
        {{ recsys_eval.safe_divide(recsys_eval.exact_sum('weighted_value_sum'), 'sum(weight_sum)') }} as replicate_mean

    from segment_sums
    group by
        metric_position,
        replicate

    union all

    select
        'segment' as scope,
        segment_key,
        metric_position,
        replicate,
        {{ recsys_eval.safe_divide('weighted_value_sum', 'weight_sum') }} as replicate_mean

    from segment_sums

),

ordered_means as (

    select
        scope,
        segment_key,
        metric_position,
        replicate_mean,
        row_number() over (
            partition by scope, segment_key, metric_position
            order by replicate_mean, replicate
        ) - 1 as mean_index,
        count(*) over (partition by scope, segment_key, metric_position) as replicates

    from replicate_means

),

bounds as (

    -- percentile interval as the reference picks it: sorted means[floor(a (B - 1))] and
    -- means[ceil((1 - a) (B - 1))], a = (1 - level) / 2, B = replicates that drew a case
    select
        scope,
        segment_key,
        metric_position,
        max(replicates) as replicates,
        max(
            case when mean_index = floor({{ alpha }} * (replicates - 1)) then replicate_mean end
        ) as ci_lower,
        max(
            case when mean_index = ceil((1 - {{ alpha }}) * (replicates - 1)) then replicate_mean end
        ) as ci_upper

    from ordered_means
    group by
        scope,
        segment_key,
        metric_position

),

final as (

    -- per-case metrics computed over at least 2 cases (reference §4.6)
    select
        metrics.scope,
        metrics.segment_key,
        metrics.metric_position,
        metrics.metric_name,
        metrics.metric_family,
        metrics.k,
        metrics.metric_value,
        metrics.cases,
        cast(bounds.ci_lower as {{ recsys_eval.type_double() }}) as ci_lower,
        cast(bounds.ci_upper as {{ recsys_eval.type_double() }}) as ci_upper,
        cast({{ bootstrap.ci_level }} as {{ recsys_eval.type_double() }}) as ci_level,
        bounds.replicates,
        cast({{ bootstrap.seed }} as {{ dbt.type_bigint() }}) as seed

    from metrics
    inner join bounds
        on
            metrics.scope = bounds.scope
            and metrics.segment_key = bounds.segment_key
            and metrics.metric_position = bounds.metric_position
    where
        metrics.metric_kind = 'per_case'
        and metrics.cases >= 2

)

select * from final
