{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{#- the reward model's terms of the request unit; the item unit keeps them per item in fct_ope_samples -#}
{%- set model_terms = ope.reward_model_terms and ope.unit == 'request' -%}
{#-
    One aggregate over the listed items of each exposure row (int_recsys_eval__ope_items, a view on
    DuckDB, read once): the request-unit sample (reference §6.2) and the row's item diagnostics, so
    the 10 rows per exposure row are read in one pass and the CLI sums ~10x fewer rows.
-#}

with

{% if model_terms -%}
ope_items as (

    -- the listed items with the reward model's terms (model_logged, model_target_mass)
    select * from {{ ref('int_recsys_eval__ope_item_predictions') }}

),

{% else -%}
ope_items as (

    -- no requested estimator uses the reward model: the listed items as they are
    select * from {{ ref('int_recsys_eval__ope_items') }}

),

{% endif -%}
{% if ope.slice_keys | length > 0 -%}
exposures as (

    select * from {{ ref('stg_recsys_eval__exposures') }}

),

{% endif -%}
item_terms as (

    select
        load_seq,
        line_no,
        item_status = 'sample' as is_sample,
        item_status = 'no_logging_propensity' as is_unlogged,
        is_target_missing,
        is_clipped,
        near_zero_propensity_count,
        target_propensity,
        unclipped_weight,
        importance_weight,
        position_weight,
        {%- if model_terms %}
        model_logged,
        model_target_mass,
        {%- endif %}
        reward * position_weight as discounted_reward

    from ope_items

),

row_terms as (

    -- request unit: W = the mean of the sampled items' clipped weights; reward and model = the
    -- aggregate (reward_aggregation) of their position-weighted values; the diagnostics over every
    -- listed item of the row
    select
        load_seq,
        line_no,

        ----------  the request-unit sample
        count(case when is_sample then 1 end) as item_count,
        {{ recsys_eval.exact_avg('case when is_sample then importance_weight end') }} as importance_weight,
        {{ recsys_eval.ope_reward_aggregate('case when is_sample then discounted_reward end', ope.reward_aggregation) }}
            as reward,
        {%- if model_terms %}
        {{ recsys_eval.ope_reward_aggregate('case when is_sample then model_logged end', ope.reward_aggregation) }}
            as model_logged,
        {%- if ope.reward_model == 'reference' %}
        {{ recsys_eval.ope_reward_aggregate('case when is_sample then model_logged end', ope.reward_aggregation) }} as model_target,
        {%- else %}
        {{ recsys_eval.exact_sum('model_target_mass') }} as model_target,
        {%- endif %}
        {%- else %}
        cast(null as {{ double }}) as model_logged,
        cast(null as {{ double }}) as model_target,
        {%- endif %}
        count(case when is_sample and is_clipped then 1 end) as clipped_items,

        ----------  item diagnostics (summed by the CLI)
        count(*) as listed_items,
        count(case when is_unlogged then 1 end) as no_logging_propensity_items,
        count(case when is_target_missing then 1 end) as missing_target_propensity_items,
        sum(near_zero_propensity_count) as near_zero_propensities,
        coalesce(
            {{ recsys_eval.exact_sum('case when target_propensity > 0 then target_propensity end') }},
            cast(0 as {{ double }})
        ) as target_mass,
        coalesce(
            {{ recsys_eval.exact_sum('case when target_propensity > 0 and is_unlogged then target_propensity end') }},
            cast(0 as {{ double }})
        ) as target_mass_without_logging,
        coalesce({{ recsys_eval.exact_sum('unclipped_weight') }}, cast(0 as {{ double }})) as unclipped_weight_sum,
        coalesce(
            {{ recsys_eval.exact_sum('unclipped_weight * unclipped_weight') }}, cast(0 as {{ double }})
        ) as unclipped_weight_sq_sum,
        count(case when is_sample and position_weight is null then 1 end) as unranked_samples

    from item_terms
    group by
        load_seq,
        line_no

),

with_segment as (

    {%- if ope.slice_keys | length > 0 %}
    -- the segment of the exposure row's context, joined once per row
    select
        row_terms.*,
        {{ recsys_eval.segment_key('exposures.context', ope.slice_keys) }} as segment_key

    from row_terms
    inner join exposures
        on
            row_terms.load_seq = exposures.load_seq
            and row_terms.line_no = exposures.line_no
    {%- else %}
    select
        *,
        '__all__' as segment_key

    from row_terms
    {%- endif %}

),

final as (

    select
        ----------  the exposure row (file order = load_seq, line_no)
        load_seq,
        line_no,
        segment_key,

        ----------  the request-unit sample (item_count = 0: not a sample)
        item_count,
        cast(importance_weight as {{ double }}) as importance_weight,
        cast(reward as {{ double }}) as reward,
        cast(model_logged as {{ double }}) as model_logged,
        cast(model_target as {{ double }}) as model_target,
        clipped_items,

        ----------  item diagnostics
        listed_items,
        no_logging_propensity_items,
        missing_target_propensity_items,
        near_zero_propensities,
        target_mass,
        target_mass_without_logging,
        unclipped_weight_sum,
        unclipped_weight_sq_sum,
        unranked_samples

    from with_segment

)

select * from final
