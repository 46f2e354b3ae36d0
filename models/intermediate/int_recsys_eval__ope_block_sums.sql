{%- set ope = recsys_eval.ope_options() -%}
{%- set file_order = 'load_seq, line_no' ~ (', item_position' if ope.unit == 'item' else '') -%}
{#-
    The bootstrap's blocks: the samples in file order cut into G = min(n, bootstrap_blocks)
    contiguous blocks of near-equal size, sample i (0-based) in block floor(i G / n), and the sums
    each estimator is a function of (recsys_eval.ope.estimators.SUM_COLUMNS). The CLI draws blocks
    from these G rows; no sample leaves the engine.
-#}

with

sample_terms as (

    select * from {{ ref('int_recsys_eval__ope_sample_terms') }}

),

sample_count as (

    select
        count(*) as samples,
        least(count(*), {{ ope.bootstrap_blocks }}) as blocks

    from sample_terms

),

positioned as (

    select
        *,
        row_number() over (order by {{ file_order }}) - 1 as sample_position

    from sample_terms

),

blocked as (

    -- floor of an exact integer quotient: i G < 2^53, and a quotient within 1 / n of the next
    -- integer is still below it after rounding to a double
    select
        positioned.*,
        cast(
            floor(
                cast(positioned.sample_position * sample_count.blocks as {{ recsys_eval.type_double() }})
                / sample_count.samples
            ) as {{ dbt.type_bigint() }}
        ) as block_id

    from positioned
    cross join sample_count

),

final as (

    select
        block_id,
        count(*) as samples,
        {{ recsys_eval.exact_sum('importance_weight') }} as sum_weight,
        {{ recsys_eval.exact_sum('importance_weight * reward') }} as sum_weighted_reward,
        {{ recsys_eval.exact_sum('model_target') }} as sum_model_target,
        {{ recsys_eval.exact_sum('weighted_residual') }} as sum_weighted_residual,
        {{ recsys_eval.exact_sum('switch_weighted_residual') }} as sum_switch_weighted_residual

    from blocked
    group by block_id

)

select * from final
