with

exposures as (

    select * from {{ ref('stg_recsys_eval__exposures') }}

),

listed as (

    -- only what the item rows carry: every other column of the exposure row would be copied once per
    -- item by the unnest
    select
        exposure_row_id,
        request_id,
        items,
        load_seq,
        line_no

    from exposures

),

unnested as (

    {{ recsys_eval.unnest_list_with_position('listed', 'items', 'item', 'item_array_position') }}

),

flattened as (

    select
        exposure_row_id,
        request_id,
        item_array_position,
        coalesce({{ recsys_eval.struct_field('item', 'item_id') }}, '') as item_id,
        {{ recsys_eval.struct_field('item', 'rank') }} as item_rank,
        {{ recsys_eval.struct_field('item', 'propensity') }} as propensity,
        {{ recsys_eval.struct_field('item', 'logging_propensity') }} as logging_propensity,
        {{ recsys_eval.struct_field('item', 'target_propensity') }} as target_propensity,
        load_seq,
        line_no

    from unnested

),

ranked as (

    select
        *,
        -- the reference's stable sort by rank: ties keep array order; a missing rank reads as 0
        -- (load_seq, line_no) identifies the exposure row as exposure_row_id does, as integers
        row_number() over (
            partition by load_seq, line_no
            order by coalesce(item_rank, 0), item_array_position
        ) as item_position

    from flattened

),

final as (

    select
        {{ dbt.concat(["exposure_row_id", "'#'", "cast(item_array_position as " ~ dbt.type_string() ~ ")"]) }}
            as exposure_item_id,
        exposure_row_id,
        request_id,
        item_position,
        item_array_position,
        item_id,
        item_rank,
        propensity,
        logging_propensity,
        target_propensity,
        load_seq,
        line_no

    from ranked

)

select * from final
