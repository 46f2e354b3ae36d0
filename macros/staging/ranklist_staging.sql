{#-
    The two interleaving rankers (ranker_a, ranker_b) share one contract (ranklist.v1), so their
    base and staging models share one body each; the models only name their side.
-#}

{% macro ranklist_base(side) -%}
with

seed as (

    select * from {{ ref('recsys_eval_tiny_' ~ side) }}

),

typed as (

    select
        load_id,
        load_seq,
        source_file,
        line_no,
        request_id,
        user_id,
        cast(ts as {{ dbt.type_timestamp() }}) as ts,
        {{ recsys_eval.parse_string_array_json('items_json') }} as items,
        {{ recsys_eval.parse_string_map_json('context_json') }} as context

    from seed

)

select * from typed
{%- endmacro %}


{% macro ranklist_lists(side) -%}
with

source as (

    {{ recsys_eval.staged_source(side) }}

),

renamed as (

    select
        ----------  ids
        {{ dbt.concat([
            "cast(load_seq as " ~ dbt.type_string() ~ ")", "':'", "cast(line_no as " ~ dbt.type_string() ~ ")"
        ]) }} as ranklist_row_id,
        coalesce(request_id, '') as request_id,
        coalesce(user_id, '') as user_id,

        ----------  list (array order is the rank order) and context
        items,
        {{ recsys_eval.array_length('items') }} as item_count,
        context,

        ----------  timestamps
        cast(ts as {{ dbt.type_timestamp() }}) as ranked_at,

        ----------  lineage
        load_id,
        load_seq,
        source_file,
        line_no

    from source

)

select * from renamed
{%- endmacro %}


{% macro ranklist_items(side) -%}
with

lists as (

    select * from {{ ref('stg_recsys_eval__' ~ side ~ '_lists') }}

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
{%- endmacro %}
