{%- set ope = recsys_eval.ope_options() -%}
{%- set min_propensity = 'cast(' ~ ope.min_propensity ~ ' as ' ~ recsys_eval.type_double() ~ ')' -%}
{%- set reward_column = 'last_outcome_reward' if ope.reward_model == 'reference' else 'last_reward_event_reward' -%}
{#- a view on DuckDB: its consumers each read the columns they need in one pass, so the 10 rows per
    exposure row are never written; a table elsewhere. The segment of a sample comes from its exposure
    row in the consumers (int_recsys_eval__ope_rows joins it once per row, not per item). -#}
{{ config(materialized=recsys_eval.view_on_duckdb()) }}

with

exposure_items as (

    select * from {{ ref('stg_recsys_eval__exposure_items') }}

),

outcome_rewards as (

    select * from {{ ref('int_recsys_eval__ope_outcome_rewards') }}

),

kept_items as (

    -- the first top_k items of the stable rank sort (item_position), every exposure row in file order,
    -- duplicates of a request_id included (reference §6.2)
    select * from exposure_items
    {%- if ope.top_k > 0 %}
    where item_position <= {{ ope.top_k }}
    {%- endif %}

),

with_reward as (

    select
        kept_items.*,
        coalesce(outcome_rewards.{{ reward_column }}, 0) as reward

    from kept_items
    left join outcome_rewards
        on
            kept_items.request_id = outcome_rewards.request_id
            and kept_items.item_id = outcome_rewards.item_id

),

propensities as (

    select
        *,
        -- logging = logging_propensity, else propensity; the target is target_propensity only
        coalesce(logging_propensity, propensity) as logging_propensity_used,
        target_propensity is null as is_target_missing

    from with_reward

),

classified as (

    select
        *,
        case
            when logging_propensity_used is null or logging_propensity_used <= 0 then 'no_logging_propensity'
            {%- if not ope.allow_missing_target_propensity %}
            when is_target_missing then 'missing_target_propensity'
            {%- endif %}
            else 'sample'
        end as item_status,
        {%- if ope.allow_missing_target_propensity %}
        -- allowed: a missing target is scored as the logging policy (w = 1)
        case
            when is_target_missing and logging_propensity_used > 0 then logging_propensity_used
            else target_propensity
        end as target_propensity_used,
        {%- else %}
        target_propensity as target_propensity_used,
        {%- endif %}
        {{ recsys_eval.ope_position_weight('item_rank', ope.position_discount) }} as position_weight

    from propensities

),

final as (

    select
        ----------  ids
        exposure_item_id,
        exposure_row_id,
        request_id,
        item_id,

        ----------  position
        item_position,
        item_rank,
        position_weight,

        ----------  propensities and the weight
        item_status,
        logging_propensity_used as logging_propensity,
        target_propensity_used as target_propensity,
        coalesce(is_target_missing and logging_propensity_used > 0, false) as is_target_missing,
        (
            case
                when item_status != 'no_logging_propensity' and logging_propensity_used < {{ min_propensity }}
                    then 1
                else 0
            end
            + case
                when item_status = 'sample' and target_propensity_used < {{ min_propensity }} then 1
                else 0
            end
        ) as near_zero_propensity_count,
        case
            when item_status = 'sample'
                then {{ recsys_eval.ope_importance_weight('target_propensity_used', 'logging_propensity_used', 0) }}
        end as unclipped_weight,
        case
            when item_status = 'sample'
                then {{ recsys_eval.ope_importance_weight(
                    'target_propensity_used', 'logging_propensity_used', ope.clipping) }}
        end as importance_weight,
        {%- if ope.clipping > 0 %}
        item_status = 'sample'
        and {{ recsys_eval.ope_importance_weight('target_propensity_used', 'logging_propensity_used', 0) }}
        > cast({{ ope.clipping }} as {{ recsys_eval.type_double() }}) as is_clipped,
        {%- else %}
        false as is_clipped,
        {%- endif %}

        ----------  reward
        reward,

        ----------  lineage (file order = load_seq, line_no, item_position)
        load_seq,
        line_no

    from classified

)

select * from final
