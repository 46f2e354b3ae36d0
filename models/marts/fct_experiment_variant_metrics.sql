{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set double = recsys_eval.type_double() %}

with

variant_stats as (

    select * from {{ ref('int_recsys_eval__experiment_variant_stats') }}

),

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

cuped as (

    select * from {{ ref('fct_experiment_cuped') }}

),

spans as (

    -- the span of the cases with a timestamp, in seconds
    select
        scope,
        segment_key,
        variant,
        exposures,
        cast(last_exposed_at_epoch_us - first_exposed_at_epoch_us as {{ double }}) / 1.0e6 as span_seconds

    from variant_stats

),

throughput as (

    -- exposures / span; 0 for a zero span (a single timestamp) or no timestamp
    select
        scope,
        segment_key,
        variant,
        case when span_seconds > 0 then exposures / span_seconds else 0.0e0 end as throughput_rps

    from spans

),

group_means as (

    -- CUPED inputs of the group: means over its cases with a covariate
    select
        variant_stats.scope,
        variant_stats.segment_key,
        variant_stats.variant,
        variant_stats.covariate_sum / variant_stats.covariate_exposures as covariate_mean,
        cast(variant_stats.covariate_clicked as {{ double }}) / variant_stats.covariate_exposures as clicked_mean,
        cast(variant_stats.covariate_converted as {{ double }}) / variant_stats.covariate_exposures as converted_mean

    from variant_stats
    where variant_stats.covariate_exposures > 0

),

shifted as (

    -- mean_g(X) - mean(X), against the global covariate mean
    select
        group_means.*,
        group_means.covariate_mean - cuped.covariate_mean as covariate_shift

    from group_means
    cross join cuped

),

cuped_adjusted as (

    -- CUPED point estimates (reference §5.7): mean_g(Y) - theta (mean_g(X) - mean(X)); the global
    -- theta and mean also serve the segments; null when CUPED is inactive
    select
        shifted.scope,
        shifted.segment_key,
        shifted.variant,
        case
            when cuped.is_active
                then shifted.clicked_mean - cuped.theta_ctr * shifted.covariate_shift
        end as ctr_adjusted,
        case
            when cuped.is_active
                then shifted.converted_mean - cuped.theta_conversion_rate * shifted.covariate_shift
        end as conversion_rate_adjusted

    from shifted
    cross join cuped

),

final as (

    select
        ----------  grain
        variant_stats.scope,
        variant_stats.segment_key,
        variant_stats.variant,
        coalesce(arms.is_control, false) as is_control,

        ----------  counts (reference §5.3)
        variant_stats.exposures,
        variant_stats.clicks,
        variant_stats.conversions,
        variant_stats.revenue,

        ----------  rates: events per assigned exposure, so ctr and conversion_rate can exceed 1
        {{ recsys_eval.safe_divide('variant_stats.clicks', 'variant_stats.exposures') }} as ctr,
        {{ recsys_eval.safe_divide('variant_stats.conversions', 'variant_stats.exposures') }} as conversion_rate,
        {{ recsys_eval.safe_divide('variant_stats.revenue', 'variant_stats.exposures') }} as revenue_per_request,
        cast(throughput.throughput_rps as {{ double }}) as throughput_rps,

        ----------  CUPED
        cast(cuped_adjusted.ctr_adjusted as {{ double }}) as ctr_adjusted,
        cast(cuped_adjusted.conversion_rate_adjusted as {{ double }}) as conversion_rate_adjusted,
        variant_stats.covariate_exposures,

        ----------  flags
        variant_stats.clicks > variant_stats.exposures
        or variant_stats.conversions > variant_stats.exposures as has_events_above_exposures

    from variant_stats
    left join arms
        on variant_stats.variant = arms.variant
    left join throughput
        on
            variant_stats.scope = throughput.scope
            and variant_stats.segment_key = throughput.segment_key
            and variant_stats.variant = throughput.variant
    left join cuped_adjusted
        on
            variant_stats.scope = cuped_adjusted.scope
            and variant_stats.segment_key = cuped_adjusted.segment_key
            and variant_stats.variant = cuped_adjusted.variant

)

select * from final
