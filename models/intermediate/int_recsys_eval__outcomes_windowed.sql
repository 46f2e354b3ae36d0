{{ config(materialized='view') }}

with

outcomes as (

    select * from {{ ref('stg_recsys_eval__outcomes') }}

),

windowed as (

    -- offline time split: outcomes are filtered on their own ts, so an outcome after the window's
    -- end is dropped even when its exposure is inside (the reference's behaviour)
    select * from outcomes
    where {{ recsys_eval.in_test_window('occurred_at') }}

)

select * from windowed
