{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set double = recsys_eval.type_double() %}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

variant_stats as (

    select * from {{ ref('int_recsys_eval__experiment_variant_stats') }}
    where scope = 'global'

),

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

thresholds as (

    -- 0 = not configured (reference §5.4)
    select
        {{ recsys_eval.experiment_double_literal(experiment.max_latency_p95_ms) }} as max_latency_p95_ms,
        {{ recsys_eval.experiment_double_literal(experiment.max_error_rate) }} as max_error_rate,
        {{ recsys_eval.experiment_double_literal(experiment.max_empty_rate) }} as max_empty_rate

),

latency_counts as (

    -- one row per variant and distinct latency: how many cases have it (a grouped pass, no sort of
    -- the cases)
    select
        variant,
        latency_ms,
        count(*) as latency_cases

    from experiment_requests
    where latency_ms is not null
    group by
        variant,
        latency_ms

),

latencies_running as (

    -- per variant, the cases at or below each distinct latency and the variant's case count
    select
        variant,
        latency_ms,
        sum(latency_cases) over (
            partition by variant
            order by latency_ms
            rows between unbounded preceding and current row
        ) as running_cases,
        sum(latency_cases) over (partition by variant) as latency_exposures

    from latency_counts

),

latency_p95 as (

    -- the reference's floor-style percentile: the value at 0-based index floor(0.95 (n - 1)), i.e.
    -- the smallest latency whose running count reaches that 1-based rank
    select
        variant,
        min(latency_ms) as latency_p95_ms

    from latencies_running
    where running_cases >= {{ recsys_eval.experiment_floor_rank('latency_exposures', '9.5e-1') }}
    group by variant

),

measured as (

    select
        variant_stats.variant,
        variant_stats.exposures,
        variant_stats.latency_exposures,
        cast(coalesce(latency_p95.latency_p95_ms, 0) as {{ double }}) as latency_p95_ms,
        {{ recsys_eval.safe_divide('variant_stats.error_exposures', 'variant_stats.exposures') }} as error_rate,
        {{ recsys_eval.safe_divide('variant_stats.empty_exposures', 'variant_stats.exposures') }} as empty_rate

    from variant_stats
    left join latency_p95
        on variant_stats.variant = latency_p95.variant

),

final as (

    select
        measured.variant,
        coalesce(arms.is_control, false) as is_control,
        coalesce(arms.is_candidate, false) as is_candidate,
        measured.exposures,
        measured.latency_exposures,
        measured.latency_p95_ms,
        measured.error_rate,
        measured.empty_rate,
        thresholds.max_latency_p95_ms,
        thresholds.max_error_rate,
        thresholds.max_empty_rate,
        -- a check passes when its threshold is 0 (not configured) or the value is at most the threshold
        thresholds.max_latency_p95_ms = 0
        or measured.latency_p95_ms <= thresholds.max_latency_p95_ms as pass_latency,
        thresholds.max_error_rate = 0 or measured.error_rate <= thresholds.max_error_rate as pass_error_rate,
        thresholds.max_empty_rate = 0 or measured.empty_rate <= thresholds.max_empty_rate as pass_empty_rate

    from measured
    cross join thresholds
    left join arms
        on measured.variant = arms.variant

)

select * from final
