{#-
    The offline bootstrap gives the same draws and intervals on every engine: on the tiny seeds with
    the default metrics and bootstrap {iterations 200, seed 42, ci_level 0.95}, the Poisson weights of
    r1, r2 and r3 summed over the 200 replicates, the replicates that drew a case and the global
    intervals equal what tests/python/bootstrap_reference.py (hashlib md5, independent of SQL)
    computes. scripts/test builds both targets with the bootstrap on, so this runs on DuckDB and Spark.
-#}
{%- set bootstrap = recsys_eval.offline_bootstrap() -%}
{{ config(
    enabled=(
        recsys_eval.config_var('recsys_eval__source', 'seeds') == 'seeds'
        and recsys_eval.config_var('recsys_eval__test_window_start', none) is none
        and recsys_eval.config_var('recsys_eval__offline_dialect', 'reference') == 'reference'
        and (recsys_eval.config_var('recsys_eval__offline_bootstrap', {}) or {}).get('enabled', false)
        and (recsys_eval.config_var('recsys_eval__offline_bootstrap', {}) or {}).get('iterations', 200) == 200
        and (recsys_eval.config_var('recsys_eval__offline_bootstrap', {}) or {}).get('seed', 42) == 42
        and (recsys_eval.config_var('recsys_eval__offline_bootstrap', {}) or {}).get('ci_level', 0.95) == 0.95
    )
) }}

with

intervals as (

    select * from {{ ref('fct_offline_metric_intervals') }}
    where scope = 'global'

),

replicates as (

    select cast(generated_number as {{ dbt.type_bigint() }}) as replicate
    from ({{ dbt.generate_series(200) }}) as series

),

requests as (

    select 'r1' as request_id, 205 as expected_weight_sum
    union all
    select 'r2', 232
    union all
    select 'r3', 188

),

weights as (

    select
        requests.request_id,
        requests.expected_weight_sum,
        {{ recsys_eval.bootstrap_poisson_weight(recsys_eval.hash_uniform(
            recsys_eval.bootstrap_replicate_key(42, 'requests.request_id', 'replicates.replicate'))) }}
            as weight

    from requests
    cross join replicates

),

weight_sums as (

    select
        request_id,
        max(expected_weight_sum) as expected_weight_sum,
        sum(weight) as weight_sum

    from weights
    group by request_id

),

expected_intervals as (

    select 'precision@10' as metric_name, 0.0 as ci_lower, cast(1 as {{ recsys_eval.type_double() }}) / 3 as ci_upper
    union all
    select 'recall@10', 0.0, 1.0
    union all
    select 'map@10', 0.0, 1.0
    union all
    select 'ndcg@10', 0.0, 1.0
    union all
    select 'hitrate@10', 0.0, 1.0
    union all
    select 'mrr@10', 0.0, 1.0

),

failures as (

    select
        'weight_sum' as check_name,
        request_id as subject

    from weight_sums
    where weight_sum != expected_weight_sum

    union all

    select
        'interval' as check_name,
        expected_intervals.metric_name as subject

    from expected_intervals
    left join intervals
        on expected_intervals.metric_name = intervals.metric_name
    where
        intervals.metric_name is null
        or intervals.replicates != 189
        or abs(intervals.ci_lower - expected_intervals.ci_lower) > 1e-12
        or abs(intervals.ci_upper - expected_intervals.ci_upper) > 1e-12

)

select * from failures
