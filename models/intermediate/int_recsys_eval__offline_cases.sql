with

requests as (

    select * from {{ ref('int_recsys_eval__requests') }}

),

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_windowed') }}

),

relevant_items as (

    -- R: the distinct item ids of the case's windowed click / conversion outcomes (reference §4.2);
    -- binary relevance, so value, event type and repeats do not matter
    select distinct
        request_id,
        item_id

    from outcomes
    where event_type_normalized in ('click', 'conversion')

),

relevant_counts as (

    select
        request_id,
        count(*) as relevant_count

    from relevant_items
    group by request_id

),

cases as (

    select
        requests.request_id,
        requests.exposure_row_id,
        requests.segment_key,
        requests.item_count as list_length,
        coalesce(relevant_counts.relevant_count, 0) as relevant_count,
        requests.exposed_at

    from requests
    left join relevant_counts
        on requests.request_id = relevant_counts.request_id

)

select * from cases
