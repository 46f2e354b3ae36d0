{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{#-
    The slate estimators' sums (docs/ope.md, "Slate OPE"): one row per scope (global, and each segment
    with slice_keys) and estimator over the complete slates of int_recsys_eval__ope_slates (an
    incomplete slate's terms and weights are null, so the sums skip it; it is counted in
    incomplete_slates). The CLI turns them into values (sum term / slates), standard errors and weight
    diagnostics; no per-slate row leaves the engine. Every double sum is recsys_eval.exact_sum (the
    same on every run).
-#}

with

ope_slates as (

    select * from {{ ref('int_recsys_eval__ope_slates') }}

),

estimator_terms as (

    -- one row per slate and estimator: its term, its weights (standard IPS: one per slate;
    -- independent IPS and RIPS: one per slot) and its reward; null for an incomplete slate
    select
        segment_key,
        is_complete,
        unweighted_slots,
        'slate_standard_ips' as estimator,
        standard_term as term,
        cast(case when is_complete then 1 else 0 end as {{ dbt.type_bigint() }}) as weights,
        standard_weight as weight_sum,
        standard_weight * standard_weight as weight_sq_sum,
        standard_weight as weight_max,
        standard_clipped as clipped_weights,
        case when is_complete then slate_reward end as slate_reward

    from ope_slates

    union all

    select
        segment_key,
        is_complete,
        unweighted_slots,
        'slate_independent_ips' as estimator,
        independent_term as term,
        cast(case when is_complete then slots else 0 end as {{ dbt.type_bigint() }}) as weights,
        independent_weight_sum as weight_sum,
        independent_weight_sq_sum as weight_sq_sum,
        independent_weight_max as weight_max,
        independent_clipped as clipped_weights,
        case when is_complete then slate_reward end as slate_reward

    from ope_slates

    union all

    select
        segment_key,
        is_complete,
        unweighted_slots,
        'slate_rips' as estimator,
        rips_term as term,
        cast(case when is_complete then slots else 0 end as {{ dbt.type_bigint() }}) as weights,
        rips_weight_sum as weight_sum,
        rips_weight_sq_sum as weight_sq_sum,
        rips_weight_max as weight_max,
        rips_clipped as clipped_weights,
        case when is_complete then slate_reward end as slate_reward

    from ope_slates

),

scoped_terms as (

    select
        'global' as scope,
        '__all__' as segment_key,
        estimator,
        is_complete,
        unweighted_slots,
        term,
        weights,
        weight_sum,
        weight_sq_sum,
        weight_max,
        clipped_weights,
        slate_reward

    from estimator_terms
    {%- if ope.slice_keys | length > 0 %}

    union all

    select
        'segment' as scope,
        segment_key,
        estimator,
        is_complete,
        unweighted_slots,
        term,
        weights,
        weight_sum,
        weight_sq_sum,
        weight_max,
        clipped_weights,
        slate_reward

    from estimator_terms
    {%- endif %}

),

final as (

    select
        scope,
        segment_key,
        estimator,
        count(case when is_complete then 1 end) as slates,
        count(case when not is_complete then 1 end) as incomplete_slates,
        sum(unweighted_slots) as unweighted_slots,
        cast({{ recsys_eval.exact_sum('term') }} as {{ double }}) as term_sum,
        cast({{ recsys_eval.exact_sum('term * term') }} as {{ double }}) as term_sq_sum,
        sum(weights) as weights,
        cast({{ recsys_eval.exact_sum('weight_sum') }} as {{ double }}) as weight_sum,
        cast({{ recsys_eval.exact_sum('weight_sq_sum') }} as {{ double }}) as weight_sq_sum,
        cast(max(weight_max) as {{ double }}) as weight_max,
        sum(clipped_weights) as clipped_weights,
        cast({{ recsys_eval.exact_sum('slate_reward') }} as {{ double }}) as reward_sum,
        cast({{ recsys_eval.exact_sum('slate_reward * slate_reward') }} as {{ double }}) as reward_sq_sum

    from scoped_terms
    group by
        scope,
        segment_key,
        estimator

)

select * from final
