-- Seeds mode only: the tiny exposures seed in the shape of raw.exposures.
{{ config(enabled=(var('recsys_eval__source', 'seeds') == 'seeds')) }}
with

seed as (

    select * from {{ ref('recsys_eval_tiny_exposures') }}

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
        {{ recsys_eval.parse_exposure_items_json('items_json') }} as items,
        {{ recsys_eval.parse_string_map_json('context_json') }} as context,
        cast(latency_ms as {{ recsys_eval.type_double() }}) as latency_ms,
        error

    from seed

)

select * from typed
