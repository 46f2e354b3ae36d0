-- Seeds mode only: the tiny logged interleaved lists in the shape of raw.interleaved_exposures.
{{ config(enabled=(var('recsys_eval__source', 'seeds') == 'seeds' and recsys_eval.using_source('rankers'))) }}

with

seed as (

    select * from {{ ref('recsys_eval_tiny_interleaved_exposures') }}

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
        {{ recsys_eval.parse_interleaved_items_json('items_json') }} as items,
        algorithm,
        {{ recsys_eval.parse_string_map_json('context_json') }} as context

    from seed

)

select * from typed
