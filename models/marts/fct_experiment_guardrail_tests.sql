{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set margins = experiment.guardrail_margins -%}
{%- set double = recsys_eval.type_double() -%}
{#- the custom guardrails (experiment.metrics with role: guardrail): their per-user value and
    delta-method variance (fct_experiment_metric_tests' formulas), their margin and direction -#}
{%- set custom = recsys_eval.experiment_custom_metric_definitions() | selectattr('role', 'equalto', 'guardrail') | list %}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

variant_stats as (

    select * from {{ ref('int_recsys_eval__experiment_variant_stats') }}
    where scope = 'global'

),

custom_stats as (

    select * from {{ ref('int_recsys_eval__experiment_custom_stats') }}
    where scope = 'global'

),

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

settings as (

    select {{ recsys_eval.experiment_double_literal(experiment.guardrail_alpha) }} as alpha

),

configured_margins as (

    -- var recsys_eval__experiment_guardrail_margins, one row per tested guardrail (none when empty),
    -- then the custom guardrails; direction_sign 1 when higher is worse (every built-in guardrail),
    -- -1 when higher is better
    select
        cast(null as {{ dbt.type_string() }}) as guardrail,
        cast(null as {{ double }}) as margin,
        cast(null as {{ dbt.type_string() }}) as margin_type,
        cast(null as {{ double }}) as direction_sign

    from settings
    where 1 = 0
    {%- for entry in margins %}

    union all

    select
        {{ recsys_eval.string_literal(entry.metric) }} as guardrail,
        {{ recsys_eval.experiment_double_literal(entry.margin) }} as margin,
        {{ "'relative'" if entry.relative else "'absolute'" }} as margin_type,
        1.0e0 as direction_sign
    {%- endfor %}
    {%- for metric in custom %}

    union all

    select
        {{ recsys_eval.string_literal(metric.name) }} as guardrail,
        {{ recsys_eval.experiment_double_literal(metric.margin) }} as margin,
        {{ "'relative'" if metric.relative else "'absolute'" }} as margin_type,
        {{ '-1.0e0' if metric.higher_is_better else '1.0e0' }} as direction_sign
    {%- endfor %}

),

latency_means as (

    -- mean latency_ms over the variant's cases with a latency (order-independent sums)
    select
        variant,
        {{ recsys_eval.exact_avg('latency_ms') }} as latency_mean

    from experiment_requests
    where latency_ms is not null
    group by variant

),

latency_moments as (

    -- and its population variance, two-pass: the moments about that mean
    select
        experiment_requests.variant,
        count(*) as latency_exposures,
        max(latency_means.latency_mean) as latency_mean,
        {{ recsys_eval.exact_var_pop('experiment_requests.latency_ms', 'latency_means.latency_mean') }}
            as latency_variance

    from experiment_requests
    inner join latency_means
        on experiment_requests.variant = latency_means.variant
    where experiment_requests.latency_ms is not null
    group by experiment_requests.variant

),

measures as (

    -- one row per variant and guardrail: the unit mean (a share or the mean latency), its per-case
    -- population variance and the number of cases behind it (global only, like reference §5.4)
    select
        variant_stats.variant,
        'error_rate' as guardrail,
        1 as guardrail_position,
        variant_stats.exposures as cases,
        {{ recsys_eval.safe_divide('variant_stats.error_exposures', 'variant_stats.exposures') }} as measure_mean,
        {{ recsys_eval.experiment_tally_variance(
            'variant_stats.error_exposures', 'variant_stats.error_exposures', 'variant_stats.exposures') }}
            as measure_variance

    from variant_stats

    union all

    select
        variant_stats.variant,
        'empty_rate' as guardrail,
        2 as guardrail_position,
        variant_stats.exposures as cases,
        {{ recsys_eval.safe_divide('variant_stats.empty_exposures', 'variant_stats.exposures') }} as measure_mean,
        {{ recsys_eval.experiment_tally_variance(
            'variant_stats.empty_exposures', 'variant_stats.empty_exposures', 'variant_stats.exposures') }}
            as measure_variance

    from variant_stats

    union all

    select
        variant_stats.variant,
        'latency_mean' as guardrail,
        3 as guardrail_position,
        coalesce(latency_moments.latency_exposures, 0) as cases,
        cast(latency_moments.latency_mean as {{ double }}) as measure_mean,
        cast(latency_moments.latency_variance as {{ double }}) as measure_variance

    from variant_stats
    left join latency_moments
        on variant_stats.variant = latency_moments.variant

    union all

    -- the custom guardrails: the per-user ratio and its delta-method variance per unit (users)
    select
        variant,
        metric as guardrail,
        metric_position - {{ recsys_eval.experiment_metric_names() | length }} + 3 as guardrail_position,
        units as cases,
        {{ recsys_eval.safe_divide('numerator_sum', 'denominator_sum') }} as measure_mean,
        {{ recsys_eval.experiment_ratio_unit_variance(
            'numerator_sum', 'numerator_squared_sum', 'cross_sum',
            'denominator_sum', 'denominator_squared_sum', 'units') }} as measure_variance

    from custom_stats
    where metric in (
        {%- for metric in custom %}
        {{ recsys_eval.string_literal(metric.name) }},
        {%- endfor %}
        cast(null as {{ dbt.type_string() }})
    )

),

control_measures as (

    select measures.*
    from measures
    inner join arms
        on measures.variant = arms.variant
    where arms.is_control

),

comparisons as (

    -- every non-control variant against the control, for each configured guardrail, s = direction_sign
    -- (1: higher is worse). H0: the variant is worse by at least the margin: s (mean1 - mean0) >= margin
    -- (an absolute margin) or s (mean1 / mean0 - 1) >= margin (a relative one, mean0 > 0). Both read
    -- s mean1 - scale mean0 - offset >= 0 with scale = s + margin (relative) or s, offset = margin
    -- (absolute) or 0; s = 1 is the built-in guardrails' test unchanged.
    select
        measures.variant,
        control_measures.variant as control_variant,
        measures.guardrail,
        measures.guardrail_position,
        configured_margins.margin,
        configured_margins.margin_type,
        measures.cases,
        control_measures.cases as control_cases,
        measures.measure_mean,
        control_measures.measure_mean as control_measure_mean,
        measures.measure_variance,
        control_measures.measure_variance as control_measure_variance,
        configured_margins.direction_sign,
        case
            when configured_margins.margin_type = 'relative'
                then configured_margins.direction_sign + configured_margins.margin
            else configured_margins.direction_sign
        end as control_scale,
        case
            when configured_margins.margin_type = 'relative' then 0.0e0
            else configured_margins.margin
        end as offset_margin

    from measures
    inner join configured_margins
        on measures.guardrail = configured_margins.guardrail
    inner join control_measures
        on measures.guardrail = control_measures.guardrail
    where measures.variant != control_measures.variant

),

estimates as (

    -- the distance to the non-inferiority bound and its standard error (independent arms, Welch form)
    select
        *,
        case
            when margin_type = 'relative' and control_measure_mean != 0
                then measure_mean / control_measure_mean - 1.0e0
            when margin_type = 'absolute' then measure_mean - control_measure_mean
        end as estimate,
        direction_sign * measure_mean - control_scale * control_measure_mean - offset_margin as bound_distance,
        {{ recsys_eval.experiment_difference_se(
            'measure_variance', 'cases', 'control_scale * control_scale * control_measure_variance', 'control_cases') }}
            as standard_error

    from comparisons

),

z_scores as (

    select
        *,
        {{ recsys_eval.experiment_wald_z('bound_distance', 'standard_error') }} as z_score

    from estimates

),

p_values as (

    -- one-sided p = Phi(z) (small when the variant is clearly below the bound); without variance
    -- (both arms constant) the bound is decided by the sign of the distance: p 0 below it, else 1
    select
        *,
        case
            when cases = 0 or control_cases = 0 then cast(null as {{ double }})
            when standard_error = 0 and bound_distance < 0 then 0.0e0
            when standard_error = 0 then 1.0e0
            else {{ recsys_eval.normal_cdf('z_score') }}
        end as p_value,
        case
            when cases = 0 or control_cases = 0 then 'empty_arm'
            when standard_error = 0 then 'zero_variance'
            else 'ok'
        end as test_status

    from z_scores

),

final as (

    select
        ----------  grain
        p_values.variant,
        p_values.guardrail,
        p_values.guardrail_position,
        p_values.control_variant,
        coalesce(arms.is_candidate, false) as is_candidate,

        ----------  inputs
        p_values.margin_type,
        cast(p_values.margin as {{ double }}) as margin,
        cast(p_values.cases as {{ dbt.type_bigint() }}) as cases,
        cast(p_values.control_cases as {{ dbt.type_bigint() }}) as control_cases,
        cast(p_values.measure_mean as {{ double }}) as variant_value,
        cast(p_values.control_measure_mean as {{ double }}) as control_value,

        ----------  the one-sided non-inferiority test
        cast(p_values.estimate as {{ double }}) as estimate,
        cast(p_values.bound_distance as {{ double }}) as bound_distance,
        cast(p_values.standard_error as {{ double }}) as standard_error,
        cast(p_values.z_score as {{ double }}) as z_score,
        cast(p_values.p_value as {{ double }}) as p_value,
        settings.alpha,
        coalesce(p_values.p_value < settings.alpha, false) as is_non_inferior,
        p_values.test_status

    from p_values
    cross join settings
    left join arms
        on p_values.variant = arms.variant

)

select * from final
