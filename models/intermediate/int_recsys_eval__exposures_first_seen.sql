{#- DuckDB: a view (its consumers read a few columns each; the wide items and context are never
    written twice); elsewhere a table. -#}
{{ config(materialized=recsys_eval.view_on_duckdb()) }}

with

exposures as (

    select * from {{ ref('int_recsys_eval__exposures_windowed') }}

),

exposure_keys as (

    -- the same rows, imported a second time for the aggregate below: DuckDB materializes a CTE that is
    -- read twice, which would copy the wide items and context; two imports are two plain scans
    select * from {{ ref('int_recsys_eval__exposures_windowed') }}

),

first_rows as (

    -- per request_id: its first row in file order (load_seq, then line_no, as one bigint key: line
    -- numbers stay below 2^32) and its row count; an aggregate over the key columns, not a window
    -- that would carry the wide items and context through its sort. The key identifies the row, so
    -- the join back needs no request_id (an integer join, not a string one)
    select
        min({{ recsys_eval.file_position_key() }}) as first_row_key,
        count(*) as request_exposure_rows

    from exposure_keys
    group by request_id

),

ordered as (

    select
        exposures.*,
        first_rows.request_exposure_rows

    from exposures
    inner join first_rows
        on {{ recsys_eval.file_position_key('exposures.load_seq', 'exposures.line_no') }} = first_rows.first_row_key

),

first_seen as (

    -- the first exposure in file order becomes the request's case; later ones are dropped entirely
    select
        request_id,
        exposure_row_id,
        user_id,
        items,
        item_count,
        context,
        tenant,
        surface,
        latency_ms,
        is_error,
        exposed_at,
        request_exposure_rows - 1 as duplicate_exposure_rows,
        load_id,
        load_seq,
        source_file,
        line_no

    from ordered

)

select * from first_seen
