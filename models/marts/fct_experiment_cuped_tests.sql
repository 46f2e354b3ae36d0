{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set double = recsys_eval.type_double() -%}
{#- the metrics whose per-request outcome CUPED adjusts here: the shares (indicators clicked, converted),
    named and placed as in recsys_eval.experiment_metric_definitions (one meaning per name) -#}
{%- set shares = {} -%}
{%- for metric in recsys_eval.experiment_metric_definitions() -%}
{%- if metric.cuped_outcome in ['clicked', 'converted'] -%}
{%- do shares.update({metric.cuped_outcome: {'name': metric.name, 'position': loop.index}}) -%}
{%- endif -%}
{%- endfor -%}
{#- the custom metrics CUPED adjusts: per-request ones (unit request, any / count / sum), Y = the
    request's (capped) value, with their own theta -#}
{%- set custom = recsys_eval.experiment_custom_metric_definitions() | selectattr('cuped') | list %}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

cuped as (

    select * from {{ ref('fct_experiment_cuped') }}

),

custom_requests as (

    select * from {{ ref('int_recsys_eval__experiment_custom_requests') }}

),

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

critical_value as (

    {{ recsys_eval.experiment_critical_value(experiment) }}

),

covariate_requests as (

    -- the cases with a covariate when CUPED is active (reference §5.7), with the adjusted outcomes
    -- Y - theta (X - mean(X)): the global theta and mean, as the reference's point estimates
    select
        experiment_requests.variant,
        experiment_requests.segment_key as request_segment_key,
        experiment_requests.clicked,
        experiment_requests.converted,
        experiment_requests.clicked
        - cuped.theta_ctr * (experiment_requests.covariate_value - cuped.covariate_mean) as clicked_adjusted,
        experiment_requests.converted
        - cuped.theta_conversion_rate * (experiment_requests.covariate_value - cuped.covariate_mean)
            as converted_adjusted

    from experiment_requests
    cross join cuped
    where
        cuped.is_active
        and experiment_requests.covariate_value is not null

),

group_moments as (

    -- means and population variances (divide by n) per group, before and after the adjustment, in
    -- one grouped pass: every case once in the global scope (the rollup's variant level) and once in
    -- its experiment segment (reference §5.3); the rollup's grand total is dropped
    select
        case when grouping(request_segment_key) = 1 then 'global' else 'segment' end as scope,
        case when grouping(request_segment_key) = 1 then '__all__' else request_segment_key end as segment_key,
        variant,
        count(*) as covariate_exposures,
        avg(cast(clicked as {{ double }})) as clicked_mean,
        avg(cast(converted as {{ double }})) as converted_mean,
        {{ recsys_eval.exact_avg('clicked_adjusted') }} as clicked_adjusted_mean,
        {{ recsys_eval.exact_avg('converted_adjusted') }} as converted_adjusted_mean,
        {{ recsys_eval.exact_var_pop('clicked') }} as clicked_variance,
        {{ recsys_eval.exact_var_pop('converted') }} as converted_variance,
        {{ recsys_eval.exact_var_pop('clicked_adjusted') }} as clicked_adjusted_variance,
        {{ recsys_eval.exact_var_pop('converted_adjusted') }} as converted_adjusted_variance

    from covariate_requests
    group by rollup(variant, request_segment_key)
    having grouping(variant) = 0

),

custom_covariate_requests as (

    -- the custom per-request metrics' values on the cases with a covariate when CUPED is active
    select
        custom_requests.metric,
        custom_requests.variant,
        custom_requests.segment_key as request_segment_key,
        custom_requests.covariate_value,
        custom_requests.request_numerator as outcome_value,
        cuped.covariate_mean,
        cuped.covariate_variance

    from custom_requests
    cross join cuped
    where
        cuped.is_active
        and custom_requests.covariate_value is not null
        and custom_requests.metric in (
            {%- for metric in custom %}
            {{ recsys_eval.string_literal(metric.name) }},
            {%- endfor %}
            cast(null as {{ dbt.type_string() }})
        )

),

custom_outcome_means as (

    select
        metric,
        {{ recsys_eval.exact_avg('outcome_value') }} as outcome_mean

    from custom_covariate_requests
    group by metric

),

custom_thetas as (

    -- theta = cov(X, Y) / var(X), population moments pooled over every arm (as fct_experiment_cuped's)
    select
        custom_covariate_requests.metric,
        {{ recsys_eval.exact_sum(
            '(custom_covariate_requests.covariate_value - custom_covariate_requests.covariate_mean)
            * (custom_covariate_requests.outcome_value - custom_outcome_means.outcome_mean)') }}
        / count(*) / max(custom_covariate_requests.covariate_variance) as theta

    from custom_covariate_requests
    inner join custom_outcome_means
        on custom_covariate_requests.metric = custom_outcome_means.metric
    group by custom_covariate_requests.metric

),

custom_adjusted_requests as (

    select
        custom_covariate_requests.metric,
        custom_covariate_requests.variant,
        custom_covariate_requests.request_segment_key,
        custom_thetas.theta,
        custom_covariate_requests.outcome_value,
        custom_covariate_requests.outcome_value
        - custom_thetas.theta * (custom_covariate_requests.covariate_value - custom_covariate_requests.covariate_mean)
            as outcome_adjusted

    from custom_covariate_requests
    inner join custom_thetas
        on custom_covariate_requests.metric = custom_thetas.metric

),

custom_group_moments as (

    -- per metric, the global scope (the rollup's variant level) and each experiment segment
    select
        metric,
        case when grouping(request_segment_key) = 1 then 'global' else 'segment' end as scope,
        case when grouping(request_segment_key) = 1 then '__all__' else request_segment_key end as segment_key,
        variant,
        count(*) as covariate_exposures,
        max(theta) as theta,
        {{ recsys_eval.exact_avg('outcome_value') }} as unadjusted_mean,
        {{ recsys_eval.exact_var_pop('outcome_value') }} as unadjusted_variance,
        {{ recsys_eval.exact_avg('outcome_adjusted') }} as adjusted_mean,
        {{ recsys_eval.exact_var_pop('outcome_adjusted') }} as adjusted_variance

    from custom_adjusted_requests
    group by rollup(metric, variant, request_segment_key)
    having grouping(variant) = 0

),

metric_groups as (

    -- one row per group and metric: click_share on Y = clicked, conversion_share on Y = converted
    select
        group_moments.scope,
        group_moments.segment_key,
        group_moments.variant,
        {{ recsys_eval.string_literal(shares.clicked.name) }} as metric,
        {{ shares.clicked.position }} as metric_position,
        group_moments.covariate_exposures,
        cuped.theta_ctr as theta,
        group_moments.clicked_mean as unadjusted_mean,
        group_moments.clicked_variance as unadjusted_variance,
        group_moments.clicked_adjusted_mean as adjusted_mean,
        group_moments.clicked_adjusted_variance as adjusted_variance

    from group_moments
    cross join cuped

    union all

    select
        group_moments.scope,
        group_moments.segment_key,
        group_moments.variant,
        {{ recsys_eval.string_literal(shares.converted.name) }} as metric,
        {{ shares.converted.position }} as metric_position,
        group_moments.covariate_exposures,
        cuped.theta_conversion_rate as theta,
        group_moments.converted_mean as unadjusted_mean,
        group_moments.converted_variance as unadjusted_variance,
        group_moments.converted_adjusted_mean as adjusted_mean,
        group_moments.converted_adjusted_variance as adjusted_variance

    from group_moments
    cross join cuped

    union all

    select
        scope,
        segment_key,
        variant,
        metric,
        {%- if custom | length == 0 %}
        cast(null as {{ dbt.type_bigint() }}) as metric_position,
        {%- else %}
        case
            {%- for metric in custom %}
            when metric = {{ recsys_eval.string_literal(metric.name) }} then {{ metric.position }}
            {%- endfor %}
        end as metric_position,
        {%- endif %}
        covariate_exposures,
        theta,
        unadjusted_mean,
        unadjusted_variance,
        adjusted_mean,
        adjusted_variance

    from custom_group_moments

),

control_groups as (

    -- the global control (reference §5.5), in every population where it has cases with a covariate
    select metric_groups.*
    from metric_groups
    inner join arms
        on metric_groups.variant = arms.variant
    where arms.is_control

),

comparisons as (

    -- every non-control variant of a population against that population's control, per metric
    select
        metric_groups.scope,
        metric_groups.segment_key,
        metric_groups.variant,
        control_groups.variant as control_variant,
        metric_groups.metric,
        metric_groups.metric_position,
        metric_groups.theta,
        metric_groups.covariate_exposures,
        control_groups.covariate_exposures as control_covariate_exposures,
        metric_groups.unadjusted_mean,
        control_groups.unadjusted_mean as control_unadjusted_mean,
        metric_groups.adjusted_mean,
        control_groups.adjusted_mean as control_adjusted_mean,
        metric_groups.unadjusted_variance,
        control_groups.unadjusted_variance as control_unadjusted_variance,
        metric_groups.adjusted_variance,
        control_groups.adjusted_variance as control_adjusted_variance

    from metric_groups
    inner join control_groups
        on
            metric_groups.scope = control_groups.scope
            and metric_groups.segment_key = control_groups.segment_key
            and metric_groups.metric = control_groups.metric
    where metric_groups.variant != control_groups.variant

),

estimates as (

    -- adjusted difference of means with Var(Y - theta X) per arm (theta treated as known), and the
    -- same difference without the adjustment on the same cases (theta = 0) for comparison
    select
        *,
        adjusted_mean - control_adjusted_mean as absolute_lift,
        {{ recsys_eval.experiment_difference_se(
            'adjusted_variance', 'covariate_exposures', 'control_adjusted_variance', 'control_covariate_exposures') }}
            as absolute_lift_standard_error,
        unadjusted_mean - control_unadjusted_mean as unadjusted_absolute_lift,
        {{ recsys_eval.experiment_difference_se(
            'unadjusted_variance', 'covariate_exposures', 'control_unadjusted_variance', 'control_covariate_exposures') }}
            as unadjusted_absolute_lift_standard_error,
        case
            when control_adjusted_mean != 0 then (adjusted_mean - control_adjusted_mean) / control_adjusted_mean
        end as relative_lift,
        {{ recsys_eval.experiment_relative_lift_se(
            'adjusted_mean', 'adjusted_variance', 'covariate_exposures',
            'control_adjusted_mean', 'control_adjusted_variance', 'control_covariate_exposures') }}
            as relative_lift_standard_error

    from comparisons

),

z_scores as (

    select
        *,
        {{ recsys_eval.experiment_wald_z('absolute_lift', 'absolute_lift_standard_error') }} as z_score

    from estimates

),

p_values as (

    -- two-sided normal p-value; null without a positive standard error
    select
        *,
        {{ recsys_eval.normal_two_sided_p_value('z_score') }} as p_value

    from z_scores

),

ranked as (

    -- the CUPED family: every test with a p-value, corrected with the experiment's method
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
        ----------  grain (the same tests as fct_experiment_significance)
        scope,
        segment_key,
        variant,
        metric,
        metric_position,
        control_variant,

        ----------  inputs: cases with a covariate, theta, means of the indicator before and after CUPED
        cast(covariate_exposures as {{ dbt.type_bigint() }}) as cuped_exposures,
        cast(control_covariate_exposures as {{ dbt.type_bigint() }}) as cuped_control_exposures,
        cast(theta as {{ double }}) as cuped_theta,
        cast(unadjusted_mean as {{ double }}) as cuped_unadjusted_variant_mean,
        cast(control_unadjusted_mean as {{ double }}) as cuped_unadjusted_control_mean,
        cast(adjusted_mean as {{ double }}) as cuped_variant_mean,
        cast(control_adjusted_mean as {{ double }}) as cuped_control_mean,
        cast(adjusted_variance as {{ double }}) as cuped_variant_variance,
        cast(control_adjusted_variance as {{ double }}) as cuped_control_variance,

        ----------  the variance-reduced test
        ci_level,
        alpha,
        cast(absolute_lift as {{ double }}) as cuped_absolute_lift,
        cast(absolute_lift_standard_error as {{ double }}) as cuped_absolute_lift_standard_error,
        cast(absolute_lift - z_critical * absolute_lift_standard_error as {{ double }})
            as cuped_absolute_lift_ci_lower,
        cast(absolute_lift + z_critical * absolute_lift_standard_error as {{ double }})
            as cuped_absolute_lift_ci_upper,
        cast(z_score as {{ double }}) as cuped_z_score,
        cast(p_value as {{ double }}) as cuped_p_value,
        cast(adjusted_p_value as {{ double }}) as cuped_adjusted_p_value,
        {{ recsys_eval.string_literal(experiment.multiple_comparisons_method) }} as cuped_correction,
        cast(family_size as {{ dbt.type_bigint() }}) as cuped_family_size,
        coalesce(adjusted_p_value <= alpha, false) as cuped_is_significant,
        cast(relative_lift as {{ double }}) as cuped_relative_lift,
        cast(relative_lift_standard_error as {{ double }}) as cuped_relative_lift_standard_error,
        cast(relative_lift - z_critical * relative_lift_standard_error as {{ double }})
            as cuped_relative_lift_ci_lower,
        cast(relative_lift + z_critical * relative_lift_standard_error as {{ double }})
            as cuped_relative_lift_ci_upper,

        ----------  the unadjusted difference on the same cases and indicators (theta = 0)
        cast(unadjusted_absolute_lift as {{ double }}) as cuped_unadjusted_absolute_lift,
        cast(unadjusted_absolute_lift_standard_error as {{ double }}) as cuped_unadjusted_standard_error,
        cast(
            case
                when unadjusted_absolute_lift_standard_error > 0
                    then
                        1.0e0
                        - absolute_lift_standard_error * absolute_lift_standard_error
                        / (unadjusted_absolute_lift_standard_error * unadjusted_absolute_lift_standard_error)
            end as {{ double }}
        ) as cuped_variance_reduction

    from adjusted

)

select * from final
