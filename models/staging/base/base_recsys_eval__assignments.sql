-- Seeds mode only: the tiny assignments seed in the shape of raw.assignments.
{{ config(enabled=(var('recsys_eval__source', 'seeds') == 'seeds' and recsys_eval.using_source('assignments'))) }}

with

seed as (

    select * from {{ ref('recsys_eval_tiny_assignments') }}

),

typed as (

    select
        load_id,
        load_seq,
        source_file,
        line_no,
        experiment_id,
        variant,
        request_id,
        user_id,
        cast(ts as {{ dbt.type_timestamp() }}) as ts,
        {{ recsys_eval.parse_string_map_json('context_json') }} as context

    from seed

)

select * from typed
