{#- DuckDB: a view, so a consumer reads only the columns it needs (the context maps are never
    written); elsewhere a table -#}
{{ config(
    enabled=var('recsys_eval__using_assignments', true),
    materialized=recsys_eval.view_on_duckdb()
) }}

with

assignments as (

    select * from {{ ref('stg_recsys_eval__assignments') }}

),

in_experiment_keys as (

    -- rows with an empty request_id or variant are "missing" and skipped (reference §2.4); the
    -- experiment filter applied. Only the key columns: each step reads the assignments once
    select
        request_id,
        load_seq * 4294967296 + line_no as row_key

    from assignments
    where
        request_id != ''
        and variant != ''
        and {{ recsys_eval.matches_experiment('experiment_id') }}

),

in_experiment as (

    -- the same rows, every column
    select * from assignments
    where
        request_id != ''
        and variant != ''
        and {{ recsys_eval.matches_experiment('experiment_id') }}

),

last_rows as (

    -- per request_id: its last row in file order (load_seq, then line_no, as one bigint key: line
    -- numbers stay below 2^32) and its row count; an aggregate over the key columns, not a window
    -- that would carry the context through its sort
    select
        request_id,
        max(row_key) as last_row_key,
        count(*) as request_assignment_rows

    from in_experiment_keys
    group by request_id

),

ordered as (

    select
        in_experiment.*,
        last_rows.request_assignment_rows

    from in_experiment
    inner join last_rows
        on
            in_experiment.request_id = last_rows.request_id
            and in_experiment.load_seq * 4294967296 + in_experiment.line_no = last_rows.last_row_key

),

latest as (

    -- the last row in file order wins, even when its variant differs
    select
        request_id,
        assignment_row_id,
        experiment_id,
        variant,
        user_id,
        context,
        {{ recsys_eval.segment_key('context', var('recsys_eval__srm_slice_keys', [])) }} as srm_segment_key,
        assigned_at,
        request_assignment_rows,
        load_seq,
        line_no

    from ordered

)

select * from latest
