with

exposures as (

    select * from {{ ref('int_recsys_eval__exposures_windowed') }}

),

ordered as (

    select
        *,
        row_number() over (partition by request_id order by load_seq, line_no) as request_exposure_seq,
        count(*) over (partition by request_id) as request_exposure_rows

    from exposures

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
    where request_exposure_seq = 1

)

select * from first_seen
