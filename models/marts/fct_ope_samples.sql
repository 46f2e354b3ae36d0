{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}

with

ope_items as (

    select * from {{ ref('int_recsys_eval__ope_items') }}

),

reward_model as (

    select * from {{ ref('int_recsys_eval__ope_reward_model') }}

),

fallback as (

    -- an item the model never observed: 0 in the reference; the mean reward per sampled item otherwise
    {%- if ope.reward_model == 'reference' %}
    select cast(0 as {{ double }}) as predicted_reward
    {%- else %}
    select coalesce(avg(reward), cast(0 as {{ double }})) as predicted_reward
    from ope_items
    where item_status = 'sample'
    {%- endif %}

),

predicted as (

    select
        ope_items.*,
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
        coalesce(target_propensity, cast(0 as {{ double }})) * predicted_reward * position_weight as model_target_mass,
        -- the exposure row as integers (load_seq, line_no): cheaper keys than exposure_row_id
        row_number() over (
            partition by load_seq, line_no, item_status = 'sample'
            order by item_position
        ) as status_position

    from predicted

),

unlogged_mass as (

    select
        load_seq,
        line_no,
        sum(model_target_mass) as unlogged_model_target

    from item_terms
    where item_status = 'no_logging_propensity'
    group by
        load_seq,
        line_no

),

sample_items as (

    select
        item_terms.*,
        coalesce(unlogged_mass.unlogged_model_target, cast(0 as {{ double }})) as unlogged_model_target

    from item_terms
    left join unlogged_mass
        on
            item_terms.load_seq = unlogged_mass.load_seq
            and item_terms.line_no = unlogged_mass.line_no
    where item_terms.item_status = 'sample'

),

{% if ope.unit == 'item' -%}
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

    from sample_items

),
{%- else -%}
samples as (

    -- request unit: one sample per exposure row with at least one item (weight W = the mean of the
    -- items' clipped weights; reward and model = the aggregate of the position-weighted values)
    select
        min(exposure_row_id) as sample_id,
        min(exposure_row_id) as exposure_row_id,
        min(request_id) as request_id,
        min(segment_key) as segment_key,
        cast(null as {{ dbt.type_string() }}) as item_id,
        cast(null as {{ dbt.type_bigint() }}) as item_position,
        cast(1 as {{ double }}) as logging_propensity,
        avg(importance_weight) as target_propensity,
        cast(1 as {{ double }}) as position_weight,
        avg(importance_weight) as importance_weight,
        {{ ope.reward_aggregation }}(discounted_reward) as reward,
        {{ ope.reward_aggregation }}(model_logged) as model_logged,
        {%- if ope.reward_model == 'reference' %}
        {{ ope.reward_aggregation }}(model_logged) as model_target,
        {%- else %}
        sum(model_target_mass) + min(unlogged_model_target) as model_target,
        {%- endif %}
        count(*) as item_count,
        sum(case when is_clipped then 1 else 0 end) as clipped_items,
        load_seq,
        line_no

    from sample_items
    group by
        load_seq,
        line_no

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
