{{ config(materialized='view') }}

{%- set follow_exposure = recsys_eval.config_var('recsys_eval__outcomes_follow_exposure', false) %}
{%- if follow_exposure is not boolean %}
    {{ exceptions.raise_compiler_error("var recsys_eval__outcomes_follow_exposure must be true or false") }}
{%- endif %}

with

outcomes as (

    select * from {{ ref('stg_recsys_eval__outcomes') }}

),

{% if follow_exposure -%}

exposures as (

    select * from {{ ref('stg_recsys_eval__exposures') }}

),

exposed_requests as (

    -- per request_id: has some exposure, and has one inside the test window
    select
        request_id,
        max(case when {{ recsys_eval.in_test_window('exposed_at') }} then 1 else 0 end) as in_window

    from exposures
    group by request_id

),

windowed as (

    -- outcomes follow their exposure: kept when their request has an exposure inside the window,
    -- whatever their own ts; outcomes of a request never exposed are filtered on their own ts
    select outcomes.*
    from outcomes
    left join exposed_requests
        on outcomes.request_id = exposed_requests.request_id
    where
        exposed_requests.in_window = 1
        or (exposed_requests.request_id is null and {{ recsys_eval.in_test_window('outcomes.occurred_at') }})

)

{%- else -%}

windowed as (

    -- offline time split: outcomes are filtered on their own ts, so an outcome after the window's
    -- end is dropped even when its exposure is inside (the reference's behaviour)
    select * from outcomes
    where {{ recsys_eval.in_test_window('occurred_at') }}

)

{%- endif %}

select * from windowed
