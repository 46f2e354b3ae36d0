{{ config(enabled=recsys_eval.using_source('rankers')) }}

with

exposures as (

    select * from {{ ref('stg_recsys_eval__interleaved_exposures') }}

),

unnested as (

    {{ recsys_eval.unnest_with_ordinality('exposures', 'items', 'shown_item', 'item_position') }}

),

final as (

    select
        {{ dbt.concat(["interleaved_exposure_row_id", "'#'", "cast(item_position as " ~ dbt.type_string() ~ ")"]) }}
            as interleaved_exposure_item_id,
        interleaved_exposure_row_id,
        request_id,
        item_position,
        coalesce({{ recsys_eval.struct_field('shown_item', 'item_id') }}, '') as item_id,
        {{ recsys_eval.struct_field('shown_item', 'rank') }} as item_rank,
        upper(coalesce({{ recsys_eval.struct_field('shown_item', 'team') }}, '')) as team,
        load_seq,
        line_no

    from unnested

)

select * from final
