{#-
    The bundled tiny seeds reproduce the reference's golden experiment section
    (golden/experiment.json, reference §11.3) on every target: variant metrics (global and the one
    segment), the significance p-values with the BH correction over m = 4, and the guardrail values.
    With the default vars the segment is '__all__' instead of the golden's 'tenant=t1', which holds the
    same cases, so the numbers are the same. Also the SRM of the tiny assignments (A 2, B 1: chi2 1/3,
    df 1), which the golden run did not configure. Tolerance 1e-12 (the reference is not bit-stable).
    Runs only on the seeds, with vars that keep the golden population and family.
-#}
{{ config(
    enabled=(
        recsys_eval.config_var('recsys_eval__source', 'seeds') == 'seeds'
        and recsys_eval.using_source('assignments')
        and recsys_eval.config_var('recsys_eval__test_window_start', none) is none
        and recsys_eval.config_var('recsys_eval__test_window_end', none) is none
        and (recsys_eval.config_var('recsys_eval__experiment_id', none) or 'exp_123') | lower == 'exp_123'
        and recsys_eval.config_var('recsys_eval__outcomes_seed', 'recsys_eval_tiny_outcomes') == 'recsys_eval_tiny_outcomes'
        and recsys_eval.config_var('recsys_eval__experiment_slice_keys', []) in [[], none, '', 'tenant', ['tenant']]
        and recsys_eval.config_var('recsys_eval__srm_slice_keys', []) in [[], none, '']
        and (recsys_eval.config_var('recsys_eval__experiment_control_variant', none) or 'A') == 'A'
        and (recsys_eval.config_var('recsys_eval__experiment_multiple_comparisons_method', 'fdr_bh') or 'fdr_bh') | lower == 'fdr_bh'
        and (recsys_eval.config_var('recsys_eval__experiment_srm_expected', {}) or {}) | length == 0
    )
) }}

with

variant_metrics as (

    select * from {{ ref('fct_experiment_variant_metrics') }}

),

significance as (

    select * from {{ ref('fct_experiment_significance') }}

),

guardrails as (

    select * from {{ ref('fct_experiment_guardrails') }}

),

srm as (

    select * from {{ ref('fct_experiment_srm') }}

),

expected_variants as (

    -- experiment.variants and experiment.by_segment (identical: every case is in the one segment)
    select
        'global' as scope,
        'A' as variant,
        2 as exposures,
        1 as clicks,
        0 as conversions,
        0.0e0 as revenue,
        0.5e0 as ctr,
        0.0e0 as conversion_rate,
        0.0e0 as revenue_per_request,
        1.6666666666666666e-2 as throughput_rps

    union all

    select
        'global' as scope,
        'B' as variant,
        1 as exposures,
        0 as clicks,
        1 as conversions,
        10.0e0 as revenue,
        0.0e0 as ctr,
        1.0e0 as conversion_rate,
        10.0e0 as revenue_per_request,
        0.0e0 as throughput_rps

),

expected_variants_scoped as (

    select * from expected_variants

    union all

    select
        'segment' as scope,
        variant,
        exposures,
        clicks,
        conversions,
        revenue,
        ctr,
        conversion_rate,
        revenue_per_request,
        throughput_rps

    from expected_variants

),

variant_failures as (

    select
        'variant_metrics' as check_name,
        expected_variants_scoped.scope,
        expected_variants_scoped.variant

    from expected_variants_scoped
    left join variant_metrics
        on
            expected_variants_scoped.scope = variant_metrics.scope
            and expected_variants_scoped.variant = variant_metrics.variant
    where
        variant_metrics.variant is null
        or variant_metrics.exposures != expected_variants_scoped.exposures
        or variant_metrics.clicks != expected_variants_scoped.clicks
        or variant_metrics.conversions != expected_variants_scoped.conversions
        or abs(variant_metrics.revenue - expected_variants_scoped.revenue) > 1e-12
        or abs(variant_metrics.ctr - expected_variants_scoped.ctr) > 1e-12
        or abs(variant_metrics.conversion_rate - expected_variants_scoped.conversion_rate) > 1e-12
        or abs(variant_metrics.revenue_per_request - expected_variants_scoped.revenue_per_request) > 1e-12
        or abs(variant_metrics.throughput_rps - expected_variants_scoped.throughput_rps) > 1e-12

),

expected_tests as (

    -- experiment.significance: B against A, pooled z-test, fdr_bh over m = 4
    select
        'ctr' as metric,
        3.8647623077123283e-1 as p_value,
        3.8647623077123283e-1 as adjusted_p_value

    union all

    select
        'conversion_rate' as metric,
        8.326451666355039e-2 as p_value,
        1.6652903332710078e-1 as adjusted_p_value

),

significance_failures as (

    select
        'significance' as check_name,
        significance.scope,
        significance.metric as variant

    from significance
    left join expected_tests
        on significance.metric = expected_tests.metric
    where
        significance.variant != 'B'
        or significance.control_variant != 'A'
        or significance.family_size != 4
        or significance.is_significant
        or expected_tests.metric is null
        or abs(significance.p_value - expected_tests.p_value) > 1e-12
        or abs(significance.adjusted_p_value - expected_tests.adjusted_p_value) > 1e-12

),

significance_count_failures as (

    select
        'significance_count' as check_name,
        'global' as scope,
        cast(count(*) as {{ dbt.type_string() }}) as variant

    from significance
    having count(*) != 4

),

guardrail_failures as (

    -- experiment.guardrails.per_variant: A [80, 120] -> index 0 -> 80; B [220] -> 220
    select
        'guardrails' as check_name,
        'global' as scope,
        variant

    from guardrails
    where
        (variant = 'A' and (latency_p95_ms != 80 or error_rate != 0 or abs(empty_rate - 0.5e0) > 1e-12))
        or (variant = 'B' and (latency_p95_ms != 220 or error_rate != 0 or empty_rate != 0))
        or variant not in ('A', 'B')

),

srm_failures as (

    -- A 2, B 1 rows with equal weights: chi2 = 1/3, df 1, p = chi2.sf(1/3, 1); 3 rows < min_sample
    select
        'srm' as check_name,
        scope,
        variant

    from srm
    where
        scope != 'global'
        or sample_size != 3
        or degrees_of_freedom != 1
        or abs(chi_square - 3.333333333333333e-1) > 1e-12
        or abs(p_value - 5.637028616507731e-1) > 1e-12
        or is_detected

),

failures as (

    select * from variant_failures
    union all
    select * from significance_failures
    union all
    select * from significance_count_failures
    union all
    select * from guardrail_failures
    union all
    select * from srm_failures

),

final as (

    select * from failures

)

select * from final
