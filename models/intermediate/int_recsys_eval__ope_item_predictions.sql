{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{#- the reward model's terms of every listed item, in one place for both units (int_recsys_eval__ope_rows
    aggregates them per exposure row, fct_ope_samples keeps them per item); a view on DuckDB, so the
    items are still read once per consumer and never written; a table elsewhere -#}
{{ config(materialized=recsys_eval.view_on_duckdb()) }}

with

ope_items as (

    select * from {{ ref('int_recsys_eval__ope_items') }}

),

reward_model as (

    select * from {{ ref('int_recsys_eval__ope_reward_model') }}

),

{% if ope.reward_model != 'reference' -%}
item_stats as (

    select * from {{ ref('int_recsys_eval__ope_item_stats') }}

),

{% endif -%}
fallback as (

    -- an item the model never observed: 0 in the reference; the mean reward per sampled item otherwise
    {%- if ope.reward_model == 'reference' %}
    select cast(0 as {{ double }}) as predicted_reward
    {%- else %}
    select
        case
            when sum(sample_items) > 0 then {{ recsys_eval.exact_sum('sample_reward_sum') }} / sum(sample_items)
            else cast(0 as {{ double }})
        end as predicted_reward

    from item_stats
    {%- endif %}

),

predicted as (

    -- every listed item: its consumers aggregate conditionally rather than filter, so the join keeps
    -- the listed items as its probe side (a filter here makes DuckDB hash the items instead)
    select
        ope_items.*,
        coalesce(reward_model.predicted_reward, fallback.predicted_reward) as predicted_reward

    from ope_items
    cross join fallback
    left join reward_model
        on ope_items.item_id = reward_model.item_id

),

final as (

    select
        *,
        predicted_reward * position_weight as model_logged,
        -- the target policy's expected model reward on this listed item; items without a logging
        -- propensity (candidates the logging policy did not show) count here and only here
        case
            when item_status != 'missing_target_propensity'
                then
                    coalesce(target_propensity, cast(0 as {{ double }}))
                    * predicted_reward
                    * position_weight
        end as model_target_mass

    from predicted

)

select * from final
