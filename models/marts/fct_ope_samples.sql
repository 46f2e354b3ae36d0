{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{#- the CLI sums the item diagnostics of int_recsys_eval__ope_item_stats: it is built with this mart -#}
-- depends_on: {{ ref('int_recsys_eval__ope_item_stats') }}

with

{% if ope.unit == 'request' -%}
exposures as (

    select * from {{ ref('stg_recsys_eval__exposures') }}

),
{%- endif %}

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
{%- endif %}

fallback as (

    -- an item the model never observed: 0 in the reference; the mean reward per sampled item otherwise
    {%- if ope.reward_model == 'reference' %}
    select cast(0 as {{ double }}) as predicted_reward
    {%- else %}
    select
        case
            when sum(sample_items) > 0 then sum(sample_reward_sum) / sum(sample_items)
            else cast(0 as {{ double }})
        end as predicted_reward

    from item_stats
    {%- endif %}

),

predicted as (

    -- every listed item: conditional expressions below rather than a where clause, so the join
    -- keeps the listed items as its probe side (a filter here makes DuckDB hash the items instead)
    select
        ope_items.*,
        ope_items.item_status = 'sample' as is_sample,
        coalesce(reward_model.predicted_reward, fallback.predicted_reward) as predicted_reward

    from ope_items
    cross join fallback
    left join reward_model
        on ope_items.item_id = reward_model.item_id

),

item_terms as (

    select
        *,
        reward * position_weight as discounted_reward,
        predicted_reward * position_weight as model_logged,
        -- the target policy's expected model reward on this listed item; items without a logging
        -- propensity (candidates the logging policy did not show) count here and only here
        case
            when item_status != 'missing_target_propensity'
                then coalesce(target_propensity, cast(0 as {{ double }})) * predicted_reward * position_weight
        end as model_target_mass

    from predicted

),

{% if ope.unit == 'item' -%}
row_terms as (

    select
        *,
        -- the exposure row as integers (load_seq, line_no): cheaper keys than exposure_row_id
        coalesce(
            sum(case when item_status = 'no_logging_propensity' then model_target_mass end)
                over (partition by load_seq, line_no),
            cast(0 as {{ double }})
        ) as unlogged_model_target,
        row_number() over (
            partition by load_seq, line_no, is_sample
            order by item_position
        ) as status_position

    from item_terms

),

samples as (

    -- item unit: one sample per item (weight = the item's clipped weight)
    select
        exposure_item_id as sample_id,
        exposure_row_id,
        request_id,
        segment_key,
        item_id,
        item_position,
        logging_propensity,
        target_propensity,
        position_weight,
        importance_weight,
        discounted_reward as reward,
        model_logged,
        {%- if ope.reward_model == 'reference' %}
        model_logged as model_target,
        {%- else %}
        -- the row's unlogged candidates ride on its first sample, so the sum over samples is complete
        model_target_mass
        + case when status_position = 1 then unlogged_model_target else 0 end as model_target,
        {%- endif %}
        1 as item_count,
        case when is_clipped then 1 else 0 end as clipped_items,
        load_seq,
        line_no

    from row_terms
    where is_sample

),
{%- else -%}
row_terms as (

    -- request unit: one aggregate over every listed item of the exposure row, on its integer keys
    -- (weight W = the mean of the items' clipped weights; reward and model = the aggregate of the
    -- position-weighted values); rows with at least one sampled item
    select
        load_seq,
        line_no,
        avg(case when is_sample then importance_weight end) as importance_weight,
        {{ ope.reward_aggregation }}(case when is_sample then discounted_reward end) as reward,
        {{ ope.reward_aggregation }}(case when is_sample then model_logged end) as model_logged,
        {%- if ope.reward_model == 'reference' %}
        {{ ope.reward_aggregation }}(case when is_sample then model_logged end) as model_target,
        {%- else %}
        sum(model_target_mass) as model_target,
        {%- endif %}
        count(case when is_sample then 1 end) as item_count,
        sum(case when is_sample and is_clipped then 1 else 0 end) as clipped_items

    from item_terms
    group by
        load_seq,
        line_no
    having count(case when is_sample then 1 end) > 0

),

samples as (

    -- the row's ids from the exposure row itself (one row per (load_seq, line_no))
    select
        exposures.exposure_row_id as sample_id,
        exposures.exposure_row_id,
        exposures.request_id,
        {{ recsys_eval.segment_key('exposures.context', ope.slice_keys) }} as segment_key,
        cast(null as {{ dbt.type_string() }}) as item_id,
        cast(null as {{ dbt.type_bigint() }}) as item_position,
        cast(1 as {{ double }}) as logging_propensity,
        row_terms.importance_weight as target_propensity,
        cast(1 as {{ double }}) as position_weight,
        row_terms.importance_weight,
        row_terms.reward,
        row_terms.model_logged,
        row_terms.model_target,
        row_terms.item_count,
        row_terms.clipped_items,
        row_terms.load_seq,
        row_terms.line_no

    from row_terms
    inner join exposures
        on
            row_terms.load_seq = exposures.load_seq
            and row_terms.line_no = exposures.line_no

),
{%- endif %}

final as (

    select
        ----------  ids
        sample_id,
        exposure_row_id,
        request_id,
        segment_key,
        item_id,
        item_position,

        ----------  the sample
        cast(logging_propensity as {{ double }}) as logging_propensity,
        cast(target_propensity as {{ double }}) as target_propensity,
        cast(position_weight as {{ double }}) as position_weight,
        cast(importance_weight as {{ double }}) as importance_weight,
        cast(reward as {{ double }}) as reward,
        cast(model_logged as {{ double }}) as model_logged,
        cast(model_target as {{ double }}) as model_target,
        item_count,
        clipped_items,

        ----------  lineage (file order)
        load_seq,
        line_no

    from samples

)

select * from final
