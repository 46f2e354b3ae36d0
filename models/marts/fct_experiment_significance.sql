{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set double = recsys_eval.type_double() -%}
{%- set primary_literals = [] -%}
{%- for metric in experiment.primary_metrics -%}
    {%- do primary_literals.append(recsys_eval.string_literal(metric)) -%}
{%- endfor %}

with

variant_stats as (

    select * from {{ ref('int_recsys_eval__experiment_variant_stats') }}

),

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

critical_value as (

    {{ recsys_eval.experiment_critical_value(experiment) }}

),

control_stats as (

    -- the global control (reference §5.5), in every population where it has cases
    select variant_stats.*
    from variant_stats
    inner join arms
        on variant_stats.variant = arms.variant
    where arms.is_control

),

comparisons as (

    -- every non-control variant of a population against that population's control (reference §5.6);
    -- populations without the control get no tests
    select
        variant_stats.scope,
        variant_stats.segment_key,
        variant_stats.variant,
        control_stats.variant as control_variant,
        variant_stats.exposures,
        variant_stats.clicks,
        variant_stats.clicks_squared_sum,
        variant_stats.conversions,
        variant_stats.conversions_squared_sum,
        control_stats.exposures as control_exposures,
        control_stats.clicks as control_clicks,
        control_stats.clicks_squared_sum as control_clicks_squared_sum,
        control_stats.conversions as control_conversions,
        control_stats.conversions_squared_sum as control_conversions_squared_sum,
        variant_stats.units,
        variant_stats.unit_requests_squared_sum,
        variant_stats.unit_clicks_squared_sum,
        variant_stats.unit_clicks_requests_sum,
        variant_stats.unit_conversions_squared_sum,
        variant_stats.unit_conversions_requests_sum,
        control_stats.units as control_units,
        control_stats.unit_requests_squared_sum as control_unit_requests_squared_sum,
        control_stats.unit_clicks_squared_sum as control_unit_clicks_squared_sum,
        control_stats.unit_clicks_requests_sum as control_unit_clicks_requests_sum,
        control_stats.unit_conversions_squared_sum as control_unit_conversions_squared_sum,
        control_stats.unit_conversions_requests_sum as control_unit_conversions_requests_sum

    from variant_stats
    inner join control_stats
        on
            variant_stats.scope = control_stats.scope
            and variant_stats.segment_key = control_stats.segment_key
    where variant_stats.variant != control_stats.variant

),

metric_tests as (

    -- two tests per comparison: ctr (clicks vs exposures) and conversion_rate; revenue is never tested
    select
        scope,
        segment_key,
        variant,
        control_variant,
        'ctr' as metric,
        1 as metric_position,
        exposures,
        clicks as successes,
        clicks_squared_sum as successes_squared_sum,
        control_exposures,
        control_clicks as control_successes,
        control_clicks_squared_sum as control_successes_squared_sum,
        units,
        unit_requests_squared_sum,
        unit_clicks_squared_sum as unit_successes_squared_sum,
        unit_clicks_requests_sum as unit_successes_requests_sum,
        control_units,
        control_unit_requests_squared_sum,
        control_unit_clicks_squared_sum as control_unit_successes_squared_sum,
        control_unit_clicks_requests_sum as control_unit_successes_requests_sum

    from comparisons

    union all

    select
        scope,
        segment_key,
        variant,
        control_variant,
        'conversion_rate' as metric,
        2 as metric_position,
        exposures,
        conversions as successes,
        conversions_squared_sum as successes_squared_sum,
        control_exposures,
        control_conversions as control_successes,
        control_conversions_squared_sum as control_successes_squared_sum,
        units,
        unit_requests_squared_sum,
        unit_conversions_squared_sum as unit_successes_squared_sum,
        unit_conversions_requests_sum as unit_successes_requests_sum,
        control_units,
        control_unit_requests_squared_sum,
        control_unit_conversions_squared_sum as control_unit_successes_squared_sum,
        control_unit_conversions_requests_sum as control_unit_successes_requests_sum

    from comparisons

),

rates as (

    select
        *,
        {{ recsys_eval.safe_divide('successes', 'exposures') }} as variant_rate,
        {{ recsys_eval.safe_divide('control_successes', 'control_exposures') }} as control_rate,
        {{ recsys_eval.safe_divide('successes + control_successes', 'exposures + control_exposures') }} as pooled_rate,
        {{ recsys_eval.experiment_pooled_variance(
            'successes', 'exposures', 'control_successes', 'control_exposures') }} as pooled_variance,
        {{ recsys_eval.experiment_tally_variance('successes', 'successes_squared_sum', 'exposures') }}
            as variant_variance,
        {{ recsys_eval.experiment_tally_variance(
            'control_successes', 'control_successes_squared_sum', 'control_exposures') }} as control_variance,
        {{ recsys_eval.experiment_ratio_unit_variance(
            'successes', 'unit_successes_squared_sum', 'unit_successes_requests_sum',
            'exposures', 'unit_requests_squared_sum', 'units') }} as user_variant_variance,
        {{ recsys_eval.experiment_ratio_unit_variance(
            'control_successes', 'control_unit_successes_squared_sum', 'control_unit_successes_requests_sum',
            'control_exposures', 'control_unit_requests_squared_sum', 'control_units') }} as user_control_variance

    from metric_tests

),

z_scores as (

    -- pooled two-proportion z-test (reference §5.6)
    select
        *,
        case when pooled_variance > 0 then sqrt(pooled_variance) end as pooled_standard_error,
        case
            when pooled_variance > 0 then (variant_rate - control_rate) / sqrt(pooled_variance)
        end as z_score

    from rates

),

p_values as (

    select
        *,
        {{ recsys_eval.experiment_z_test_p_value('z_score', 'pooled_variance', 'exposures', 'control_exposures') }}
            as p_value,
        case
            when exposures = 0 or control_exposures = 0 then 'empty_arm'
            when pooled_variance < 0 then 'pooled_rate_above_one'
            when pooled_variance = 0 then 'zero_variance'
            else 'ok'
        end as test_status

    from z_scores

),

ranked as (

    -- the family is every test with a p-value, global and segments together
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
        *,
        {{ recsys_eval.experiment_adjusted_p_value(
            experiment.multiple_comparisons_method, 'p_value', 'p_value_rank', 'family_size') }}
            as adjusted_p_value

    from ranked

),

lifts as (

    -- normal intervals: absolute lift with the unpooled standard error, relative lift by the delta method
    select
        adjusted.*,
        critical_value.alpha,
        critical_value.ci_level,
        critical_value.z_critical,
        adjusted.variant_rate - adjusted.control_rate as absolute_lift,
        case
            when adjusted.exposures > 0 and adjusted.control_exposures > 0
                then sqrt(
                    adjusted.variant_variance / adjusted.exposures
                    + adjusted.control_variance / adjusted.control_exposures
                )
        end as absolute_lift_standard_error,
        case
            when adjusted.control_rate != 0
                then (adjusted.variant_rate - adjusted.control_rate) / adjusted.control_rate
        end as relative_lift,
        {{ recsys_eval.experiment_relative_lift_se(
            'adjusted.variant_rate', 'adjusted.variant_variance', 'adjusted.exposures',
            'adjusted.control_rate', 'adjusted.control_variance', 'adjusted.control_exposures') }}
            as relative_lift_standard_error

    from adjusted
    cross join critical_value

),

user_lifts as (

    -- beyond the reference: the same lift with the variance at the randomization unit (users carry
    -- several requests, so ctr and conversion_rate are ratio metrics over users; delta method)
    select
        *,
        {{ recsys_eval.experiment_difference_se(
            'user_variant_variance', 'units', 'user_control_variance', 'control_units') }}
            as user_absolute_lift_standard_error,
        {{ recsys_eval.experiment_relative_lift_se(
            'variant_rate', 'user_variant_variance', 'units',
            'control_rate', 'user_control_variance', 'control_units') }}
            as user_relative_lift_standard_error

    from lifts

),

user_z_scores as (

    select
        *,
        {{ recsys_eval.experiment_wald_z('absolute_lift', 'user_absolute_lift_standard_error') }} as user_z_score

    from user_lifts

),

user_p_values as (

    -- two-sided normal p-value; null without a positive standard error
    select
        *,
        {{ recsys_eval.normal_two_sided_p_value('user_z_score') }} as user_p_value

    from user_z_scores

),

user_ranked as (

    -- the user-level family: every test with a user p-value, corrected with the same method
    select
        *,
        row_number() over (
            order by
                case when user_p_value is null then 1 else 0 end,
                user_p_value,
                scope,
                segment_key,
                variant,
                metric_position
        ) as user_p_value_rank,
        count(user_p_value) over () as user_family_size

    from user_p_values

),

user_adjusted as (

    select
        *,
        {{ recsys_eval.experiment_adjusted_p_value(
            experiment.multiple_comparisons_method, 'user_p_value', 'user_p_value_rank', 'user_family_size') }}
            as user_adjusted_p_value

    from user_ranked

),

final as (

    -- columns for reading: the keys, then the answer to "did the variant beat the control" (metric, arms,
    -- values, lift with its interval, the decision's p-values, significant, primary), then the detail
    select
        ----------  keys (the report's significance order)
        row_number() over (
            order by
                case when scope = 'global' then 0 else 1 end,
                segment_key,
                variant,
                metric_position
        ) as test_position,
        scope,
        segment_key,

        ----------  did the variant win
        metric,
        variant,
        control_variant,
        variant_rate,
        control_rate,
        cast(absolute_lift as {{ double }}) as absolute_lift,
        cast(absolute_lift - z_critical * absolute_lift_standard_error as {{ double }}) as absolute_lift_ci_lower,
        cast(absolute_lift + z_critical * absolute_lift_standard_error as {{ double }}) as absolute_lift_ci_upper,
        cast(relative_lift as {{ double }}) as relative_lift,
        cast(relative_lift - z_critical * relative_lift_standard_error as {{ double }}) as relative_lift_ci_lower,
        cast(relative_lift + z_critical * relative_lift_standard_error as {{ double }}) as relative_lift_ci_upper,
        cast(p_value as {{ double }}) as p_value,
        cast(adjusted_p_value as {{ double }}) as adjusted_p_value,
        coalesce(adjusted_p_value <= alpha, false) as is_significant,
        {% if primary_literals | length == 0 -%}
        false as is_primary,
        {%- else -%}
        metric in ({{ primary_literals | join(', ') }}) as is_primary,
        {%- endif %}

        ----------  detail: the test's inputs
        metric_position,
        exposures,
        successes,
        control_exposures,
        control_successes,
        pooled_rate,

        ----------  detail: the pooled z-test (reference) and the family correction
        cast(pooled_standard_error as {{ double }}) as pooled_standard_error,
        cast(z_score as {{ double }}) as z_score,
        {{ recsys_eval.string_literal(experiment.multiple_comparisons_method) }} as correction,
        cast(family_size as {{ dbt.type_bigint() }}) as family_size,
        alpha,
        test_status,

        ----------  detail: the intervals' inputs (not in the reference)
        ci_level,
        cast(absolute_lift_standard_error as {{ double }}) as absolute_lift_standard_error,
        cast(relative_lift_standard_error as {{ double }}) as relative_lift_standard_error,

        ----------  flags
        successes > exposures or control_successes > control_exposures as has_events_above_exposures,

        ----------  variance at the randomization unit (user-level delta method; not in the reference)
        cast(units as {{ dbt.type_bigint() }}) as user_count,
        cast(control_units as {{ dbt.type_bigint() }}) as control_user_count,
        cast(user_variant_variance / units as {{ double }}) as user_variant_rate_variance,
        cast(user_control_variance / control_units as {{ double }}) as user_control_rate_variance,
        cast(user_absolute_lift_standard_error as {{ double }}) as user_absolute_lift_standard_error,
        cast(user_z_score as {{ double }}) as user_z_score,
        cast(user_p_value as {{ double }}) as user_p_value,
        cast(user_adjusted_p_value as {{ double }}) as user_adjusted_p_value,
        cast(user_family_size as {{ dbt.type_bigint() }}) as user_family_size,
        coalesce(user_adjusted_p_value <= alpha, false) as user_is_significant,
        cast(
            absolute_lift - z_critical * user_absolute_lift_standard_error as {{ double }}
        ) as user_absolute_lift_ci_lower,
        cast(
            absolute_lift + z_critical * user_absolute_lift_standard_error as {{ double }}
        ) as user_absolute_lift_ci_upper,
        cast(user_relative_lift_standard_error as {{ double }}) as user_relative_lift_standard_error,
        cast(
            relative_lift - z_critical * user_relative_lift_standard_error as {{ double }}
        ) as user_relative_lift_ci_lower,
        cast(
            relative_lift + z_critical * user_relative_lift_standard_error as {{ double }}
        ) as user_relative_lift_ci_upper,
        cast(
            case
                when absolute_lift_standard_error > 0
                    then
                        user_absolute_lift_standard_error * user_absolute_lift_standard_error
                        / (absolute_lift_standard_error * absolute_lift_standard_error)
            end as {{ double }}
        ) as user_design_effect

    from user_adjusted

)

select * from final
