-- Seeds mode only: an outcome seed (var recsys_eval__outcomes_seed) in the shape of raw.outcomes.
{{ config(enabled=(var('recsys_eval__source', 'seeds') == 'seeds')) }}
with

seed as (

    select * from {{ ref(recsys_eval.config_var('recsys_eval__outcomes_seed', 'recsys_eval_tiny_outcomes')) }}

),

typed as (

    select
        load_id,
        load_seq,
        source_file,
        line_no,
        request_id,
        user_id,
        item_id,
        event_type,
        value,
        cast(ts as {{ dbt.type_timestamp() }}) as ts

    from seed

)

select * from typed
