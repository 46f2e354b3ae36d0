{#-
    int_recsys_eval__ope_rows aggregates every listed item of int_recsys_eval__ope_items once (error):
    its per-row counters summed over the rows equal the same counters over the items (a lost or a
    double-counted item shows as a difference), and the reward model's terms are present on every
    request-unit sample exactly when var recsys_eval__ope.reward_model_terms asks for them.
    An invariant of the models' logic: tagged model_invariant (the seeds build runs it;
    `recsys-eval run` only with --full-tests).
-#}
{%- set ope = recsys_eval.ope_options() -%}
{{ config(tags=['model_invariant']) }}

with

ope_rows as (

    select * from {{ ref('int_recsys_eval__ope_rows') }}

),

ope_items as (

    select * from {{ ref('int_recsys_eval__ope_items') }}

),

row_totals as (

    select
        sum(listed_items) as listed_items,
        sum(item_count) as sample_items,
        sum(clipped_items) as clipped_items,
        sum(no_logging_propensity_items) as no_logging_propensity_items,
        sum(unclipped_weight_sum) as unclipped_weight_sum,
        count(
            case
                when
                    item_count > 0
                    {%- if ope.reward_model_terms and ope.unit == 'request' %}
                    and (model_logged is null or model_target is null)
                    {%- else %}
                    and (model_logged is not null or model_target is not null)
                    {%- endif %}
                    then 1
            end
        ) as rows_with_wrong_model_terms

    from ope_rows

),

item_totals as (

    select
        count(*) as listed_items,
        count(case when item_status = 'sample' then 1 end) as sample_items,
        count(case when is_clipped then 1 end) as clipped_items,
        count(case when item_status = 'no_logging_propensity' then 1 end) as no_logging_propensity_items,
        coalesce(sum(unclipped_weight), 0) as unclipped_weight_sum

    from ope_items

),

final as (

    select
        row_totals.listed_items as row_listed_items,
        item_totals.listed_items as item_listed_items,
        row_totals.sample_items as row_sample_items,
        item_totals.sample_items as item_sample_items,
        row_totals.rows_with_wrong_model_terms

    from row_totals
    cross join item_totals
    where
        coalesce(row_totals.listed_items, 0) != item_totals.listed_items
        or coalesce(row_totals.sample_items, 0) != item_totals.sample_items
        or coalesce(row_totals.clipped_items, 0) != item_totals.clipped_items
        or coalesce(row_totals.no_logging_propensity_items, 0) != item_totals.no_logging_propensity_items
        or abs(coalesce(row_totals.unclipped_weight_sum, 0) - item_totals.unclipped_weight_sum)
        > 1e-9 * (1 + abs(item_totals.unclipped_weight_sum))
        or row_totals.rows_with_wrong_model_terms > 0

)

select * from final
