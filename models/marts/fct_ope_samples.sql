{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{#- request unit: the samples are the rows of int_recsys_eval__ope_rows with a sampled item, with their
    ids joined on read (a view on DuckDB: the numbers are written once, in int_recsys_eval__ope_rows,
    and 10M string ids are never written); item unit: one row per sampled item, a table -#}
{{ config(materialized=(recsys_eval.view_on_duckdb() if ope.unit == 'request' else 'table')) }}

with

{% if ope.unit == 'request' or ope.slice_keys | length > 0 -%}
exposures as (

    select * from {{ ref('stg_recsys_eval__exposures') }}

),

{% endif -%}
{% if ope.unit == 'item' -%}
{% if ope.reward_model_terms -%}
predicted as (

    -- the listed items with the reward model's terms (model_logged, model_target_mass)
    select * from {{ ref('int_recsys_eval__ope_item_predictions') }}

),

{% else -%}
ope_items as (

    select * from {{ ref('int_recsys_eval__ope_items') }}

),

predicted as (

    -- no requested estimator uses the reward model: its terms are null
    select
        *,
        cast(null as {{ double }}) as model_logged,
        cast(null as {{ double }}) as model_target_mass

    from ope_items

),

{% endif -%}
item_terms as (

    select
        predicted.*,
        predicted.item_status = 'sample' as is_sample,
        {%- if ope.slice_keys | length > 0 %}
        {{ recsys_eval.segment_key('exposures.context', ope.slice_keys) }} as segment_key,
        {%- else %}
        '__all__' as segment_key,
        {%- endif %}
        predicted.reward * predicted.position_weight as discounted_reward

    from predicted
    {%- if ope.slice_keys | length > 0 %}
    inner join exposures
        on
            predicted.load_seq = exposures.load_seq
            and predicted.line_no = exposures.line_no
    {%- endif %}

),

row_terms as (

    select
        *,
        -- the exposure row as integers (load_seq, line_no): cheaper keys than exposure_row_id
        coalesce(
            {{ recsys_eval.exact_sum(
                "case when item_status = 'no_logging_propensity' then model_target_mass end",
                over='partition by load_seq, line_no') }},
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
ope_rows as (

    select * from {{ ref('int_recsys_eval__ope_rows') }}

),

samples as (

    -- request unit: the exposure rows with at least one sampled item, their ids from the row itself
    select
        exposures.exposure_row_id as sample_id,
        exposures.exposure_row_id,
        exposures.request_id,
        ope_rows.segment_key,
        cast(null as {{ dbt.type_string() }}) as item_id,
        cast(null as {{ dbt.type_bigint() }}) as item_position,
        cast(1 as {{ double }}) as logging_propensity,
        ope_rows.importance_weight as target_propensity,
        cast(1 as {{ double }}) as position_weight,
        ope_rows.importance_weight,
        ope_rows.reward,
        ope_rows.model_logged,
        ope_rows.model_target,
        ope_rows.item_count,
        ope_rows.clipped_items,
        ope_rows.load_seq,
        ope_rows.line_no

    from ope_rows
    inner join exposures
        on
            ope_rows.load_seq = exposures.load_seq
            and ope_rows.line_no = exposures.line_no
    where ope_rows.item_count > 0

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
