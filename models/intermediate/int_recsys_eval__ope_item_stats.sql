{#-
    One pass over the listed items (int_recsys_eval__ope_items, a view on DuckDB), grouped by item: the
    inputs of the reward model of reward_model exposure (int_recsys_eval__ope_reward_model) and of the
    fallback prediction of an unseen item. Built only when some estimator uses the reward model
    (var recsys_eval__ope.reward_model_terms); the diagnostics are summed per exposure row in
    int_recsys_eval__ope_rows.
-#}
with

ope_items as (

    select * from {{ ref('int_recsys_eval__ope_items') }}

),

flagged as (

    select
        item_id,
        item_status = 'sample' as is_sample,
        reward

    from ope_items

),

final as (

    select
        item_id,
        count(*) as listed_items,
        count(case when is_sample then 1 end) as sample_items,
        coalesce(
            {{ recsys_eval.exact_sum('case when is_sample then reward end') }},
            cast(0 as {{ recsys_eval.type_double() }})
        ) as sample_reward_sum

    from flagged
    group by item_id

)

select * from final
