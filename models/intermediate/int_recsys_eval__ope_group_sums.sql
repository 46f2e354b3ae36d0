{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{#-
    Everything the CLI's OPE statistics need, as sums per scope: the global one and, with
    slice_keys, each segment. First the sums of the estimators' terms (the values), then the sums of
    squared deviations around the values (their variances, two passes as numpy's: no cancellation),
    the weight statistics (max, p95 by rank, sum of squares for the ESS), the logged policy's sums and
    the reward model's R²; on the global row the exposure rows' item diagnostics. No sample leaves the
    engine (recsys_eval.ope.aggregates reads this table).
-#}

with

sample_terms as (

    select * from {{ ref('int_recsys_eval__ope_sample_terms') }}

),

ope_rows as (

    select * from {{ ref('int_recsys_eval__ope_rows') }}

),

scoped as (

    select
        'global' as scope,
        '__all__' as segment_key,
        importance_weight,
        reward,
        model_logged,
        model_target,
        weighted_residual,
        switch_weighted_residual,
        clipped_items

    from sample_terms
    {%- if ope.slice_keys | length > 0 %}

    union all

    select
        'segment' as scope,
        segment_key,
        importance_weight,
        reward,
        model_logged,
        model_target,
        weighted_residual,
        switch_weighted_residual,
        clipped_items

    from sample_terms
    {%- endif %}

),

first_moments as (

    select
        scope,
        segment_key,
        count(*) as samples,
        sum(clipped_items) as clipped_items,
        {{ recsys_eval.exact_sum('importance_weight') }} as sum_weight,
        {{ recsys_eval.exact_sum('importance_weight * reward') }} as sum_weighted_reward,
        {{ recsys_eval.exact_sum('model_target') }} as sum_model_target,
        {{ recsys_eval.exact_sum('weighted_residual') }} as sum_weighted_residual,
        {{ recsys_eval.exact_sum('switch_weighted_residual') }} as sum_switch_weighted_residual,
        {{ recsys_eval.exact_sum('model_target + weighted_residual') }} as sum_dr_terms,
        {{ recsys_eval.exact_sum('model_target + switch_weighted_residual') }} as sum_switch_dr_terms,
        {{ recsys_eval.exact_sum('importance_weight * importance_weight') }} as sum_weight_squares,
        {{ recsys_eval.exact_sum('reward') }} as sum_reward,
        {{ recsys_eval.exact_sum('reward * reward') }} as sum_reward_squares,
        {{ recsys_eval.exact_sum('(reward - model_logged) * (reward - model_logged)') }} as sum_model_error_squares,
        max(importance_weight) as max_weight

    from scoped
    group by
        scope,
        segment_key

),

centres as (

    -- the values the deviations are taken around, as recsys_eval.ope.estimators computes them
    select
        scope,
        segment_key,
        sum_weighted_reward / samples as ips_value,
        case when sum_weight != 0 then sum_weighted_reward / sum_weight else 0 end as snips_value,
        sum_model_target / samples as dm_value,
        sum_dr_terms / samples as dr_value,
        sum_switch_dr_terms / samples as switch_dr_value,
        case when sum_weight != 0 then sum_weighted_residual / sum_weight else 0 end as sndr_correction,
        sum_weight / samples as weight_mean,
        sum_reward / samples as reward_mean,
        -- in doubles, as numpy: the decimal 0.95 would round some ranks differently
        cast(floor(cast(0.95 as {{ double }}) * cast(samples - 1 as {{ double }}) + 0.5) as {{ dbt.type_bigint() }})
            as p95_rank

    from first_moments

),

deviations as (

    select
        scoped.scope,
        scoped.segment_key,
        scoped.importance_weight * scoped.reward - centres.ips_value as ips_deviation,
        scoped.importance_weight * scoped.reward - centres.snips_value as snips_deviation,
        scoped.importance_weight * (scoped.reward - centres.snips_value) as snips_linear_term,
        scoped.model_target - centres.dm_value as dm_deviation,
        scoped.model_target + scoped.weighted_residual - centres.dr_value as dr_deviation,
        scoped.model_target + scoped.switch_weighted_residual - centres.switch_dr_value as switch_dr_deviation,
        -- SNDR's linearised term d + (w / w̄)(r - m - c), shifted by DM's value (its mean up to rounding)
        case
            when centres.weight_mean != 0
                then
                    scoped.model_target
                    + scoped.importance_weight / centres.weight_mean
                    * (scoped.reward - scoped.model_logged - centres.sndr_correction)
            else scoped.model_target
        end - centres.dm_value as sndr_shifted_term,
        scoped.reward - centres.reward_mean as reward_deviation

    from scoped
    inner join centres
        on
            scoped.scope = centres.scope
            and scoped.segment_key = centres.segment_key

),

second_moments as (

    select
        scope,
        segment_key,
        {{ recsys_eval.exact_sum('ips_deviation * ips_deviation') }} as ss_ips,
        {{ recsys_eval.exact_sum('snips_deviation * snips_deviation') }} as ss_snips,
        {{ recsys_eval.exact_sum('snips_linear_term * snips_linear_term') }} as ss_snips_linear,
        {{ recsys_eval.exact_sum('dm_deviation * dm_deviation') }} as ss_dm,
        {{ recsys_eval.exact_sum('dr_deviation * dr_deviation') }} as ss_dr,
        {{ recsys_eval.exact_sum('switch_dr_deviation * switch_dr_deviation') }} as ss_switch_dr,
        {{ recsys_eval.exact_sum('sndr_shifted_term') }} as sum_sndr_shifted,
        {{ recsys_eval.exact_sum('sndr_shifted_term * sndr_shifted_term') }} as ss_sndr_shifted,
        {{ recsys_eval.exact_sum('reward_deviation * reward_deviation') }} as ss_reward

    from deviations
    group by
        scope,
        segment_key

),

weight_ranks as (

    select
        scope,
        segment_key,
        importance_weight,
        row_number() over (partition by scope, segment_key order by importance_weight) - 1 as weight_rank

    from scoped

),

weight_p95 as (

    -- the reference's p95: the sorted weight at round-half-away(0.95 (n - 1))
    select
        weight_ranks.scope,
        weight_ranks.segment_key,
        max(weight_ranks.importance_weight) as p95_weight

    from weight_ranks
    inner join centres
        on
            weight_ranks.scope = centres.scope
            and weight_ranks.segment_key = centres.segment_key
            and weight_ranks.weight_rank = centres.p95_rank
    group by
        weight_ranks.scope,
        weight_ranks.segment_key

),

item_diagnostics as (

    -- over every exposure row with a listed item (samples or not): the global row's counters
    select
        'global' as scope,
        '__all__' as segment_key,
        coalesce(sum(listed_items), 0) as listed_items,
        coalesce(sum(item_count), 0) as sample_items,
        coalesce(sum(no_logging_propensity_items), 0) as no_logging_propensity_items,
        coalesce(sum(missing_target_propensity_items), 0) as missing_target_propensity_items,
        coalesce(sum(near_zero_propensities), 0) as near_zero_propensities,
        coalesce(sum(clipped_items), 0) as diagnostic_clipped_items,
        coalesce({{ recsys_eval.exact_sum('target_mass') }}, cast(0 as {{ double }})) as target_mass,
        coalesce({{ recsys_eval.exact_sum('target_mass_without_logging') }}, cast(0 as {{ double }}))
            as target_mass_without_logging,
        coalesce({{ recsys_eval.exact_sum('unclipped_weight_sum') }}, cast(0 as {{ double }}))
            as unclipped_weight_sum,
        coalesce({{ recsys_eval.exact_sum('unclipped_weight_sq_sum') }}, cast(0 as {{ double }}))
            as unclipped_weight_sq_sum,
        coalesce(sum(unranked_samples), 0) as unranked_samples

    from ope_rows

),

moments as (

    select
        ----------  the scope
        first_moments.scope,
        first_moments.segment_key,

        ----------  sums of the estimators' terms
        first_moments.samples,
        first_moments.clipped_items,
        cast(first_moments.sum_weight as {{ double }}) as sum_weight,
        cast(first_moments.sum_weighted_reward as {{ double }}) as sum_weighted_reward,
        cast(first_moments.sum_model_target as {{ double }}) as sum_model_target,
        cast(first_moments.sum_weighted_residual as {{ double }}) as sum_weighted_residual,
        cast(first_moments.sum_switch_weighted_residual as {{ double }}) as sum_switch_weighted_residual,
        cast(first_moments.sum_dr_terms as {{ double }}) as sum_dr_terms,
        cast(first_moments.sum_switch_dr_terms as {{ double }}) as sum_switch_dr_terms,

        ----------  squared deviations around the values
        cast(second_moments.ss_ips as {{ double }}) as ss_ips,
        cast(second_moments.ss_snips as {{ double }}) as ss_snips,
        cast(second_moments.ss_snips_linear as {{ double }}) as ss_snips_linear,
        cast(second_moments.ss_dm as {{ double }}) as ss_dm,
        cast(second_moments.ss_dr as {{ double }}) as ss_dr,
        cast(second_moments.ss_switch_dr as {{ double }}) as ss_switch_dr,
        cast(second_moments.sum_sndr_shifted as {{ double }}) as sum_sndr_shifted,
        cast(second_moments.ss_sndr_shifted as {{ double }}) as ss_sndr_shifted,

        ----------  weights, logged policy, reward model
        cast(first_moments.sum_weight_squares as {{ double }}) as sum_weight_squares,
        cast(first_moments.max_weight as {{ double }}) as max_weight,
        cast(weight_p95.p95_weight as {{ double }}) as p95_weight,
        cast(first_moments.sum_reward as {{ double }}) as sum_reward,
        cast(first_moments.sum_reward_squares as {{ double }}) as sum_reward_squares,
        cast(second_moments.ss_reward as {{ double }}) as ss_reward,
        cast(first_moments.sum_model_error_squares as {{ double }}) as sum_model_error_squares

    from first_moments
    inner join second_moments
        on
            first_moments.scope = second_moments.scope
            and first_moments.segment_key = second_moments.segment_key
    inner join weight_p95
        on
            first_moments.scope = weight_p95.scope
            and first_moments.segment_key = weight_p95.segment_key

),

final as (

    -- the global row exists without samples too (its item diagnostics name why)
    select
        coalesce(moments.scope, item_diagnostics.scope) as scope,
        coalesce(moments.segment_key, item_diagnostics.segment_key) as segment_key,
        coalesce(moments.samples, 0) as samples,
        coalesce(moments.clipped_items, 0) as clipped_items,
        moments.sum_weight,
        moments.sum_weighted_reward,
        moments.sum_model_target,
        moments.sum_weighted_residual,
        moments.sum_switch_weighted_residual,
        moments.sum_dr_terms,
        moments.sum_switch_dr_terms,
        moments.ss_ips,
        moments.ss_snips,
        moments.ss_snips_linear,
        moments.ss_dm,
        moments.ss_dr,
        moments.ss_switch_dr,
        moments.sum_sndr_shifted,
        moments.ss_sndr_shifted,
        moments.sum_weight_squares,
        moments.max_weight,
        moments.p95_weight,
        moments.sum_reward,
        moments.sum_reward_squares,
        moments.ss_reward,
        moments.sum_model_error_squares,
        item_diagnostics.listed_items,
        item_diagnostics.sample_items,
        item_diagnostics.no_logging_propensity_items,
        item_diagnostics.missing_target_propensity_items,
        item_diagnostics.near_zero_propensities,
        item_diagnostics.diagnostic_clipped_items,
        cast(item_diagnostics.target_mass as {{ double }}) as target_mass,
        cast(item_diagnostics.target_mass_without_logging as {{ double }}) as target_mass_without_logging,
        cast(item_diagnostics.unclipped_weight_sum as {{ double }}) as unclipped_weight_sum,
        cast(item_diagnostics.unclipped_weight_sq_sum as {{ double }}) as unclipped_weight_sq_sum,
        item_diagnostics.unranked_samples

    from moments
    full outer join item_diagnostics
        on
            moments.scope = item_diagnostics.scope
            and moments.segment_key = item_diagnostics.segment_key

)

select * from final
