{#-
    int_recsys_eval__requests must keep exactly one row per distinct windowed request_id, and its
    outcome counts must add up to the joined outcomes (error). An invariant of the models' logic:
    tagged model_invariant (the seeds build runs it; `recsys-eval run` only with --full-tests).
-#}
{{ config(tags=['model_invariant']) }}
with

exposures as (

    select * from {{ ref('int_recsys_eval__exposures_windowed') }}

),

requests as (

    select * from {{ ref('int_recsys_eval__requests') }}

),

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_joined') }}

),

exposure_counts as (

    select count(distinct request_id) as distinct_request_ids
    from exposures

),

outcome_counts as (

    select sum(case when is_joined then 1 else 0 end) as joined_outcomes
    from outcomes

),

expected as (

    select
        exposure_counts.distinct_request_ids,
        coalesce(outcome_counts.joined_outcomes, 0) as joined_outcomes

    from exposure_counts
    cross join outcome_counts

),

actual as (

    select
        count(*) as request_rows,
        coalesce(sum(outcome_count), 0) as attached_outcomes

    from requests

),

mismatches as (

    select
        expected.distinct_request_ids,
        actual.request_rows,
        expected.joined_outcomes,
        actual.attached_outcomes

    from expected
    cross join actual
    where
        expected.distinct_request_ids != actual.request_rows
        or expected.joined_outcomes != actual.attached_outcomes

)

select * from mismatches
