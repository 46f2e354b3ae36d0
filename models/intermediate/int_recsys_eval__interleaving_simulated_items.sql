{{ config(enabled=recsys_eval.using_source('rankers')) }}
{#-
    The re-simulated interleaved lists as rows: one per placed item of
    int_recsys_eval__interleaving_simulated_walks, its slot and the team that placed it.
-#}

with

walks as (

    select * from {{ ref('int_recsys_eval__interleaving_simulated_walks') }}

),

shown as (

    {{ recsys_eval.unnest_with_ordinality('walks', 'placed_items', 'item_id', 'slot') }}

),

final as (

    select
        request_id,
        cast(slot as {{ dbt.type_bigint() }}) as slot,
        item_id,
        substr(team_sequence, cast(slot as integer), 1) as team

    from shown

)

select * from final
