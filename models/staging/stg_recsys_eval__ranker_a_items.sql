{{ config(enabled=var('recsys_eval__using_rankers', true)) }}

with

lists as (

    select * from {{ ref('stg_recsys_eval__ranker_a_lists') }}

),

unnested as (

    {{ recsys_eval.unnest_with_ordinality('lists', 'items', 'item_id', 'item_position') }}

),

final as (

    select
        {{ dbt.concat(["ranklist_row_id", "'#'", "cast(item_position as " ~ dbt.type_string() ~ ")"]) }}
            as ranklist_item_id,
        ranklist_row_id,
        request_id,
        item_position,
        coalesce(item_id, '') as item_id,
        load_seq,
        line_no

    from unnested

)

select * from final
