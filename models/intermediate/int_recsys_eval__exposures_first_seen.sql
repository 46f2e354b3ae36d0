with

exposures as (

    select * from {{ ref('int_recsys_eval__exposures_windowed') }}

),

first_rows as (

    -- per request_id: its first row in file order (load_seq, then line_no, as one bigint key: line
    -- numbers stay below 2^32) and its row count; an aggregate over the key columns, not a window
    -- that would carry the wide items and context through its sort
    select
        request_id,
        min(load_seq * 4294967296 + line_no) as first_row_key,
        count(*) as request_exposure_rows

    from exposures
    group by request_id

),

ordered as (

    select
        exposures.*,
        first_rows.request_exposure_rows

    from exposures
    inner join first_rows
        on
            exposures.request_id = first_rows.request_id
            and exposures.load_seq * 4294967296 + exposures.line_no = first_rows.first_row_key

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
