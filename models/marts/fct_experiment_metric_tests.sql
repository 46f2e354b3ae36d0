{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set decision = recsys_eval.experiment_decision_config(experiment) -%}
{%- set metrics = recsys_eval.experiment_metric_definitions() -%}
{%- set double = recsys_eval.type_double() -%}
{%- set primary_literals = [] -%}
{%- for metric in decision.primary_metrics -%}
{%- do primary_literals.append(recsys_eval.string_literal(metric)) -%}
{%- endfor %}

with

variant_stats as (

    select * from {{ ref('int_recsys_eval__experiment_variant_stats') }}

),

custom_stats as (

    select * from {{ ref('int_recsys_eval__experiment_custom_stats') }}

),

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

critical_value as (

    {{ recsys_eval.experiment_critical_value(experiment) }}

),

arm_metrics as (

    -- one row per population x variant x defined metric (experiment_metric_definitions): the sums of
    -- the ratio sum(numerator) / sum(denominator) over the arm's users and its unit moments; a per-user
    -- metric has denominator 1 per user (its cross sum is the numerator's sum)
    {%- for metric in metrics %}
    select
        scope,
        segment_key,
        variant,
        {{ recsys_eval.string_literal(metric.name) }} as metric,
        {{ loop.index }} as metric_position,
        {{ recsys_eval.string_literal(metric.label) }} as metric_label,
        {{ recsys_eval.string_literal(metric.kind) }} as metric_kind,
        units,
        exposures,
        first_exposed_at_epoch_us,
        last_exposed_at_epoch_us,
        cast({{ metric.numerator }} as {{ double }}) as numerator_sum,
        cast(unit_{{ metric.numerator }}_squared_sum as {{ double }}) as numerator_squared_sum,
        {%- if metric.denominator == 'requests' %}
        cast(exposures as {{ double }}) as denominator_sum,
        cast(unit_{{ metric.numerator }}_requests_sum as {{ double }}) as cross_sum,
        cast(unit_requests_squared_sum as {{ double }}) as denominator_squared_sum
        {%- else %}
        cast(units as {{ double }}) as denominator_sum,
        cast({{ metric.numerator }} as {{ double }}) as cross_sum,
        cast(units as {{ double }}) as denominator_squared_sum
        {%- endif %}

    from variant_stats

    union all
    {%- endfor %}

    -- the custom metrics (experiment.metrics): the same sums, from int_recsys_eval__experiment_custom_stats
    select
        custom_stats.scope,
        custom_stats.segment_key,
        custom_stats.variant,
        custom_stats.metric,
        custom_stats.metric_position,
        custom_stats.metric_label,
        custom_stats.metric_kind,
        custom_stats.units,
        custom_stats.exposures,
        variant_stats.first_exposed_at_epoch_us,
        variant_stats.last_exposed_at_epoch_us,
        custom_stats.numerator_sum,
        custom_stats.numerator_squared_sum,
        custom_stats.denominator_sum,
        custom_stats.cross_sum,
        custom_stats.denominator_squared_sum

    from custom_stats
    inner join variant_stats
        on
            custom_stats.scope = variant_stats.scope
            and custom_stats.segment_key = variant_stats.segment_key
            and custom_stats.variant = variant_stats.variant

),

arm_estimates as (

    -- the arm's value and the per-unit delta-method variance of it (Var(value) = unit_variance / units)
    select
        *,
        {{ recsys_eval.safe_divide('numerator_sum', 'denominator_sum') }} as metric_value,
        {{ recsys_eval.experiment_ratio_unit_variance(
            'numerator_sum', 'numerator_squared_sum', 'cross_sum',
            'denominator_sum', 'denominator_squared_sum', 'units') }} as unit_variance

    from arm_metrics

),

control_estimates as (

    -- the global control (reference §5.5), in every population where it has cases
    select arm_estimates.*
    from arm_estimates
    inner join arms
        on arm_estimates.variant = arms.variant
    where arms.is_control

),

comparisons as (

    -- every non-control variant of a population against that population's control, per metric
    select
        arm_estimates.scope,
        arm_estimates.segment_key,
        arm_estimates.variant,
        control_estimates.variant as control_variant,
        arm_estimates.metric,
        arm_estimates.metric_position,
        arm_estimates.metric_label,
        arm_estimates.metric_kind,
        arm_estimates.units,
        control_estimates.units as control_units,
        arm_estimates.exposures,
        control_estimates.exposures as control_exposures,
        arm_estimates.metric_value,
        control_estimates.metric_value as control_metric_value,
        arm_estimates.unit_variance,
        control_estimates.unit_variance as control_unit_variance,
        least(arm_estimates.first_exposed_at_epoch_us, control_estimates.first_exposed_at_epoch_us)
            as first_exposed_at_epoch_us,
        greatest(arm_estimates.last_exposed_at_epoch_us, control_estimates.last_exposed_at_epoch_us)
            as last_exposed_at_epoch_us

    from arm_estimates
    inner join control_estimates
        on
            arm_estimates.scope = control_estimates.scope
            and arm_estimates.segment_key = control_estimates.segment_key
            and arm_estimates.metric = control_estimates.metric
    where arm_estimates.variant != control_estimates.variant

),

lifts as (

    -- difference of the two independent ratio estimators and the delta-method relative lift
    select
        *,
        metric_value - control_metric_value as absolute_lift,
        {{ recsys_eval.experiment_difference_se('unit_variance', 'units', 'control_unit_variance', 'control_units') }}
            as absolute_lift_standard_error,
        case
            when control_metric_value != 0 then (metric_value - control_metric_value) / control_metric_value
        end as relative_lift,
        {{ recsys_eval.experiment_relative_lift_se(
            'metric_value', 'unit_variance', 'units',
            'control_metric_value', 'control_unit_variance', 'control_units') }}
            as relative_lift_standard_error

    from comparisons

),

z_scores as (

    select
        *,
        {{ recsys_eval.experiment_wald_z('absolute_lift', 'absolute_lift_standard_error') }} as z_score

    from lifts

),

p_values as (

    -- two-sided normal p-value; null without a positive standard error
    select
        *,
        {{ recsys_eval.normal_two_sided_p_value('z_score') }} as p_value

    from z_scores

),

ranked as (

    -- the family: every test of this mart with a p-value (every metric, variant and segment)
    select
        *,
        row_number() over (
            order by
                case when p_value is null then 1 else 0 end,
                p_value,
                scope,
                segment_key,
                variant,
                metric_position
        ) as p_value_rank,
        count(p_value) over () as family_size

    from p_values

),

adjusted as (

    select
        ranked.*,
        critical_value.alpha,
        critical_value.ci_level,
        critical_value.z_critical,
        {{ recsys_eval.experiment_adjusted_p_value(
            experiment.multiple_comparisons_method, 'ranked.p_value', 'ranked.p_value_rank', 'ranked.family_size') }}
            as adjusted_p_value

    from ranked
    cross join critical_value

),

final as (

    select
        ----------  grain
        scope,
        segment_key,
        variant,
        metric,
        metric_position,
        control_variant,
        row_number() over (
            order by
                case when scope = 'global' then 0 else 1 end,
                segment_key,
                variant,
                metric_position
        ) as test_position,

        ----------  the metric's one definition
        metric_label,
        metric_kind,
        {% if primary_literals | length == 0 -%}
        false as is_primary,
        {%- else -%}
        metric in ({{ primary_literals | join(', ') }}) as is_primary,
        {%- endif %}

        ----------  both arms: users (the randomization unit), requests, value and per-user variance
        cast(units as {{ dbt.type_bigint() }}) as user_count,
        cast(control_units as {{ dbt.type_bigint() }}) as control_user_count,
        cast(exposures as {{ dbt.type_bigint() }}) as requests,
        cast(control_exposures as {{ dbt.type_bigint() }}) as control_requests,
        cast(metric_value as {{ double }}) as variant_value,
        cast(control_metric_value as {{ double }}) as control_value,
        cast(unit_variance as {{ double }}) as variant_unit_variance,
        cast(control_unit_variance as {{ double }}) as control_unit_variance,
        cast(
            (last_exposed_at_epoch_us - first_exposed_at_epoch_us) as {{ double }}
        ) / 8.64e10 as observed_days,

        ----------  the test at the user level (delta method) and the family correction
        ci_level,
        alpha,
        cast(absolute_lift as {{ double }}) as absolute_lift,
        cast(absolute_lift_standard_error as {{ double }}) as absolute_lift_standard_error,
        -- no interval without a positive standard error (one user per arm, or no events at all)
        case
            when absolute_lift_standard_error > 0
                then cast(absolute_lift - z_critical * absolute_lift_standard_error as {{ double }})
        end as absolute_lift_ci_lower,
        case
            when absolute_lift_standard_error > 0
                then cast(absolute_lift + z_critical * absolute_lift_standard_error as {{ double }})
        end as absolute_lift_ci_upper,
        cast(relative_lift as {{ double }}) as relative_lift,
        cast(relative_lift_standard_error as {{ double }}) as relative_lift_standard_error,
        case
            when relative_lift_standard_error > 0
                then cast(relative_lift - z_critical * relative_lift_standard_error as {{ double }})
        end as relative_lift_ci_lower,
        case
            when relative_lift_standard_error > 0
                then cast(relative_lift + z_critical * relative_lift_standard_error as {{ double }})
        end as relative_lift_ci_upper,
        cast(z_score as {{ double }}) as z_score,
        cast(p_value as {{ double }}) as p_value,
        cast(adjusted_p_value as {{ double }}) as adjusted_p_value,
        {{ recsys_eval.string_literal(experiment.multiple_comparisons_method) }} as correction,
        cast(family_size as {{ dbt.type_bigint() }}) as family_size,
        coalesce(adjusted_p_value <= alpha, false) as is_significant,
        case when p_value is null then 'zero_variance' else 'ok' end as test_status

    from adjusted

)

select * from final
