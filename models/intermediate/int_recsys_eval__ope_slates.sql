{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{%- set zero = 'cast(0 as ' ~ double ~ ')' -%}
{%- set window = 'partition by load_seq, line_no order by item_position rows between unbounded preceding and current row' -%}
{#-
    The slate estimators' per-request terms (docs/ope.md, "Slate OPE"): one row per exposure row with a
    listed item, the slate being its listed items (top_k) in slot order (item_position). Every slot's
    logging and target propensities are read as per-position marginals; the products over slots are
    sums of logs (no underflow over long lists). No rows unless a slate estimator is requested.
-#}

with

ope_items as (

    select * from {{ ref('int_recsys_eval__ope_items') }}

),

{% if ope.slice_keys | length > 0 -%}
exposures as (

    select * from {{ ref('stg_recsys_eval__exposures') }}

),

{% endif -%}
slots as (

    -- one row per slot; a slot is weighted when its item is a sample (positive logging propensity,
    -- a target propensity or allow_missing_target_propensity's target = logging)
    select
        load_seq,
        line_no,
        item_position,
        item_status = 'sample' as is_weighted,
        case when item_status = 'sample' and target_propensity = 0 then 1 else 0 end as is_zero_target,
        case
            when item_status = 'sample' and target_propensity > 0
                then ln(cast(target_propensity as {{ double }})) - ln(cast(logging_propensity as {{ double }}))
        end as log_ratio,
        cast(reward * position_weight as {{ double }}) as slot_reward

    from ope_items
    {%- if not ope.slate %}
    where 1 = 0
    {%- endif %}

),

cascades as (

    -- the cascade up to each slot: the sum of the log ratios of the slots at or above it (an ordered
    -- window sum: the same additions in the same order on every run), and whether a slot at or above
    -- it has a target propensity of 0 (its product is 0 then)
    select
        *,
        sum(log_ratio) over ({{ window }}) as cascade_log_ratio,
        max(is_zero_target) over ({{ window }}) as has_zero_target_above,
        max(item_position) over (partition by load_seq, line_no) as last_position

    from slots

),

slot_weights as (

    select
        load_seq,
        line_no,
        is_weighted,
        item_position = last_position as is_last_slot,
        slot_reward,
        -- the slot's own ratio target / logging (independent IPS)
        case when is_zero_target = 1 then {{ zero }} else exp(log_ratio) end as position_ratio,
        -- the product of the ratios of the slots at or above it (RIPS; at the last slot: standard IPS)
        case when has_zero_target_above = 1 then {{ zero }} else exp(cascade_log_ratio) end as cascade_ratio

    from cascades

),

clipped as (

    select
        *,
        {%- if ope.clipping > 0 %}
        least(position_ratio, cast({{ ope.clipping }} as {{ double }})) as position_weight,
        least(cascade_ratio, cast({{ ope.clipping }} as {{ double }})) as cascade_weight,
        case when position_ratio > cast({{ ope.clipping }} as {{ double }}) then 1 else 0 end as is_position_clipped,
        case when cascade_ratio > cast({{ ope.clipping }} as {{ double }}) then 1 else 0 end as is_cascade_clipped
        {%- else %}
        position_ratio as position_weight,
        cascade_ratio as cascade_weight,
        0 as is_position_clipped,
        0 as is_cascade_clipped
        {%- endif %}

    from slot_weights

),

slates as (

    -- one row per slate: counts, the slate reward, the standard weight (the cascade at the last slot,
    -- unclipped) and the independent / RIPS terms and weight sums (exact_sum: order-independent)
    select
        load_seq,
        line_no,
        count(*) as slots,
        count(case when not is_weighted then 1 end) as unweighted_slots,
        {{ recsys_eval.exact_sum('slot_reward') }} as slate_reward,
        max(case when is_last_slot then cascade_ratio end) as standard_ratio,
        {{ recsys_eval.exact_sum('position_weight * slot_reward') }} as independent_term,
        {{ recsys_eval.exact_sum('position_weight') }} as independent_weight_sum,
        {{ recsys_eval.exact_sum('position_weight * position_weight') }} as independent_weight_sq_sum,
        max(position_weight) as independent_weight_max,
        sum(is_position_clipped) as independent_clipped,
        {{ recsys_eval.exact_sum('cascade_weight * slot_reward') }} as rips_term,
        {{ recsys_eval.exact_sum('cascade_weight') }} as rips_weight_sum,
        {{ recsys_eval.exact_sum('cascade_weight * cascade_weight') }} as rips_weight_sq_sum,
        max(cascade_weight) as rips_weight_max,
        sum(is_cascade_clipped) as rips_clipped

    from clipped
    group by
        load_seq,
        line_no

),

standard_weights as (

    select
        *,
        unweighted_slots = 0 as is_complete,
        {%- if ope.clipping > 0 %}
        least(standard_ratio, cast({{ ope.clipping }} as {{ double }})) as standard_weight,
        case when standard_ratio > cast({{ ope.clipping }} as {{ double }}) then 1 else 0 end as standard_clipped
        {%- else %}
        standard_ratio as standard_weight,
        0 as standard_clipped
        {%- endif %}

    from slates

),

with_segment as (

    {%- if ope.slice_keys | length > 0 %}
    select
        standard_weights.*,
        {{ recsys_eval.segment_key('exposures.context', ope.slice_keys) }} as segment_key

    from standard_weights
    inner join exposures
        on
            standard_weights.load_seq = exposures.load_seq
            and standard_weights.line_no = exposures.line_no
    {%- else %}
    select
        *,
        '__all__' as segment_key

    from standard_weights
    {%- endif %}

),

final as (

    -- an incomplete slate (a slot without a weight) has no terms: it enters no slate estimator
    select
        ----------  the exposure row (file order = load_seq, line_no)
        load_seq,
        line_no,
        segment_key,

        ----------  the slate
        slots,
        unweighted_slots,
        is_complete,
        cast(slate_reward as {{ double }}) as slate_reward,

        ----------  standard IPS: one weight per slate
        cast(case when is_complete then standard_weight end as {{ double }}) as standard_weight,
        case when is_complete then standard_clipped else 0 end as standard_clipped,
        cast(case when is_complete then standard_weight * slate_reward end as {{ double }}) as standard_term,

        ----------  independent IPS: one weight per slot
        cast(case when is_complete then independent_term end as {{ double }}) as independent_term,
        cast(case when is_complete then independent_weight_sum end as {{ double }}) as independent_weight_sum,
        cast(case when is_complete then independent_weight_sq_sum end as {{ double }}) as independent_weight_sq_sum,
        cast(case when is_complete then independent_weight_max end as {{ double }}) as independent_weight_max,
        case when is_complete then independent_clipped else 0 end as independent_clipped,

        ----------  reward-interaction IPS: one cascade weight per slot
        cast(case when is_complete then rips_term end as {{ double }}) as rips_term,
        cast(case when is_complete then rips_weight_sum end as {{ double }}) as rips_weight_sum,
        cast(case when is_complete then rips_weight_sq_sum end as {{ double }}) as rips_weight_sq_sum,
        cast(case when is_complete then rips_weight_max end as {{ double }}) as rips_weight_max,
        case when is_complete then rips_clipped else 0 end as rips_clipped

    from with_segment

)

select * from final
