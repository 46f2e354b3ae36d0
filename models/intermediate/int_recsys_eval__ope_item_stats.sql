{#-
    One pass over the listed items (int_recsys_eval__ope_items, a view on DuckDB), grouped by item:
    the reward model of reward_model exposure (int_recsys_eval__ope_reward_model), the fallback
    prediction of an unseen item (fct_ope_samples) and the item-level diagnostics the CLI sums
    (recsys_eval.ope.plugin) all come from these few sums, so the items are read once.
    Conditional aggregates rather than a where clause: every item counts in some column.
-#}
with

ope_items as (

    select * from {{ ref('int_recsys_eval__ope_items') }}

),

flagged as (

    select
        item_id,
        item_status = 'sample' as is_sample,
        item_status = 'no_logging_propensity' as is_unlogged,
        is_target_missing,
        is_clipped,
        near_zero_propensity_count,
        target_propensity,
        unclipped_weight,
        reward,
        position_weight

    from ope_items

),

final as (

    select
        item_id,
        count(*) as listed_items,
        count(case when is_sample then 1 end) as sample_items,
        count(case when is_unlogged then 1 end) as no_logging_propensity_items,
        count(case when is_target_missing then 1 end) as missing_target_propensity_items,
        sum(near_zero_propensity_count) as near_zero_propensities,
        count(case when is_clipped then 1 end) as clipped_items,
        coalesce(
            sum(case when target_propensity > 0 then target_propensity end),
            cast(0 as {{ recsys_eval.type_double() }})
        ) as target_mass,
        coalesce(
            sum(case when target_propensity > 0 and is_unlogged then target_propensity end),
            cast(0 as {{ recsys_eval.type_double() }})
        ) as target_mass_without_logging,
        coalesce(sum(unclipped_weight), cast(0 as {{ recsys_eval.type_double() }})) as unclipped_weight_sum,
        coalesce(
            sum(unclipped_weight * unclipped_weight), cast(0 as {{ recsys_eval.type_double() }})
        ) as unclipped_weight_sq_sum,
        coalesce(
            sum(case when is_sample then reward end), cast(0 as {{ recsys_eval.type_double() }})
        ) as sample_reward_sum,
        count(case when is_sample and position_weight is null then 1 end) as unranked_samples

    from flagged
    group by item_id

)

select * from final
