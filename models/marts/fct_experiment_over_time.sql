{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set sequential = recsys_eval.experiment_sequential_config() -%}
{%- set double = recsys_eval.type_double() -%}
{%- set tuning = recsys_eval.experiment_double_literal(sequential.tuning_parameter) -%}
{%- set experiment_id = recsys_eval.config_var('recsys_eval__experiment_id', none) %}

with

bucket_stats as (

    select * from {{ ref('int_recsys_eval__experiment_bucket_stats') }}

),

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

critical_value as (

    {{ recsys_eval.experiment_critical_value(experiment) }}

),

metric_sums as (

    -- ctr and conversion_rate as ratio metrics over users (events / requests), as the user-level
    -- analysis of fct_experiment_significance defines them
    select
        variant,
        bucket,
        bucket_index,
        bucket_start_epoch_us,
        'ctr' as metric,
        1 as metric_position,
        units,
        exposures,
        clicks as events,
        unit_requests_squared_sum,
        unit_clicks_squared_sum as unit_events_squared_sum,
        unit_clicks_requests_sum as unit_events_requests_sum

    from bucket_stats

    union all

    select
        variant,
        bucket,
        bucket_index,
        bucket_start_epoch_us,
        'conversion_rate' as metric,
        2 as metric_position,
        units,
        exposures,
        conversions as events,
        unit_requests_squared_sum,
        unit_conversions_squared_sum as unit_events_squared_sum,
        unit_conversions_requests_sum as unit_events_requests_sum

    from bucket_stats

),

variant_rates as (

    -- the cumulative rate of each variant and its per-unit delta-method variance
    select
        *,
        {{ recsys_eval.safe_divide('events', 'exposures') }} as rate,
        {{ recsys_eval.experiment_ratio_unit_variance(
            'events', 'unit_events_squared_sum', 'unit_events_requests_sum',
            'exposures', 'unit_requests_squared_sum', 'units') }} as unit_variance

    from metric_sums

),

control_rates as (

    -- the global control's cumulative rate per bucket and metric
    select variant_rates.*
    from variant_rates
    inner join arms
        on variant_rates.variant = arms.variant
    where arms.is_control

),

with_control as (

    -- every variant beside the global control's numbers in the same bucket and metric
    select
        variant_rates.*,
        arms.is_control,
        control_rates.variant as control_variant,
        control_rates.units as control_units,
        control_rates.rate as control_rate,
        control_rates.unit_variance as control_unit_variance,
        critical_value.alpha,
        critical_value.ci_level,
        critical_value.z_critical

    from variant_rates
    cross join critical_value
    inner join arms
        on variant_rates.variant = arms.variant
    left join control_rates
        on
            variant_rates.bucket_index = control_rates.bucket_index
            and variant_rates.metric = control_rates.metric

),

lifts as (

    -- the lifts against the control and their standard errors (null for the control itself)
    select
        *,
        case when not is_control then rate - control_rate end as absolute_lift,
        case
            when not is_control then {{ recsys_eval.experiment_difference_se(
                'unit_variance', 'units', 'control_unit_variance', 'control_units') }}
        end as absolute_lift_standard_error,
        case when not is_control and control_rate != 0 then (rate - control_rate) / control_rate end
            as relative_lift,
        case
            when not is_control then {{ recsys_eval.experiment_relative_lift_se(
                'rate', 'unit_variance', 'units', 'control_rate', 'control_unit_variance', 'control_units') }}
        end as relative_lift_standard_error,
        units + control_units as total_units

    from with_control

),

intervals as (

    -- fixed-horizon (normal, ci_level) and always-valid (1 - alpha confidence sequence) intervals
    select
        *,
        {{ recsys_eval.normal_two_sided_p_value(
            recsys_eval.experiment_wald_z('absolute_lift', 'absolute_lift_standard_error')) }} as p_value,
        {{ recsys_eval.experiment_cs_half_width(
            'absolute_lift_standard_error', 'total_units', 'alpha', tuning) }} as absolute_lift_sequential_half_width,
        {{ recsys_eval.experiment_cs_half_width(
            'relative_lift_standard_error', 'total_units', 'alpha', tuning) }} as relative_lift_sequential_half_width,
        {{ recsys_eval.experiment_cs_p_value(
            'absolute_lift', 'absolute_lift_standard_error', 'total_units', 'alpha', tuning) }}
            as sequential_p_value

    from lifts

),

final as (

    select
        ----------  grain
        {{ recsys_eval.string_literal(experiment_id if experiment_id is not none else '') }} as experiment_id,
        variant,
        metric,
        bucket,
        bucket_index,
        bucket_start_epoch_us,
        {{ recsys_eval.experiment_timestamp_from_epoch_us('bucket_start_epoch_us') }} as bucket_start,
        metric_position,
        is_control,
        control_variant,

        ----------  cumulative per-variant metric up to the end of the bucket
        units,
        exposures,
        events,
        cast(rate as {{ double }}) as rate,
        cast(unit_variance / units as {{ double }}) as rate_variance,

        ----------  lift against the control, fixed-horizon interval and p-value (ci_level, user level)
        ci_level,
        alpha,
        cast(absolute_lift as {{ double }}) as absolute_lift,
        cast(absolute_lift_standard_error as {{ double }}) as absolute_lift_standard_error,
        cast(absolute_lift - z_critical * absolute_lift_standard_error as {{ double }}) as absolute_lift_ci_lower,
        cast(absolute_lift + z_critical * absolute_lift_standard_error as {{ double }}) as absolute_lift_ci_upper,
        cast(relative_lift as {{ double }}) as relative_lift,
        cast(relative_lift_standard_error as {{ double }}) as relative_lift_standard_error,
        cast(relative_lift - z_critical * relative_lift_standard_error as {{ double }}) as relative_lift_ci_lower,
        cast(relative_lift + z_critical * relative_lift_standard_error as {{ double }}) as relative_lift_ci_upper,
        cast(p_value as {{ double }}) as p_value,

        ----------  always-valid (safe to peek) interval and p-value at level 1 - alpha
        {{ tuning }} as sequential_tuning_parameter,
        cast(absolute_lift - absolute_lift_sequential_half_width as {{ double }})
            as absolute_lift_sequential_ci_lower,
        cast(absolute_lift + absolute_lift_sequential_half_width as {{ double }})
            as absolute_lift_sequential_ci_upper,
        cast(relative_lift - relative_lift_sequential_half_width as {{ double }})
            as relative_lift_sequential_ci_lower,
        cast(relative_lift + relative_lift_sequential_half_width as {{ double }})
            as relative_lift_sequential_ci_upper,
        cast(sequential_p_value as {{ double }}) as sequential_p_value

    from intervals

)

select * from final
