{#-
    The grain of int_recsys_eval__experiment_requests (error): one row per assigned kept request,
    which the table does not carry the request_id to test directly. Per variant x segment, its rows,
    clicks, conversions and revenue must equal those of the assigned rows of int_recsys_eval__requests
    (one row per request_id, tested unique there); a fan-out or a lost case shows as a difference.
    An invariant of the models' logic: tagged model_invariant (the seeds build runs it;
    `recsys-eval run` only with --full-tests).
-#}
{{ config(enabled=recsys_eval.using_source('assignments'), tags=['model_invariant']) }}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

requests as (

    select * from {{ ref('int_recsys_eval__requests') }}

),

case_totals as (

    select
        variant,
        segment_key,
        count(*) as cases,
        sum(click_count) as clicks,
        sum(conversion_count) as conversions,
        sum(revenue) as revenue

    from experiment_requests
    group by variant, segment_key

),

request_totals as (

    select
        variant,
        experiment_segment_key as segment_key,
        count(*) as cases,
        sum(click_count) as clicks,
        sum(conversion_count) as conversions,
        sum(revenue) as revenue

    from requests
    where is_assigned
    group by variant, experiment_segment_key

),

final as (

    select
        coalesce(case_totals.variant, request_totals.variant) as variant,
        coalesce(case_totals.segment_key, request_totals.segment_key) as segment_key,
        case_totals.cases as experiment_cases,
        request_totals.cases as assigned_requests

    from case_totals
    full outer join request_totals
        on
            case_totals.variant = request_totals.variant
            and case_totals.segment_key = request_totals.segment_key
    where
        case_totals.cases is null
        or request_totals.cases is null
        or case_totals.cases != request_totals.cases
        or case_totals.clicks != request_totals.clicks
        or case_totals.conversions != request_totals.conversions
        or abs(case_totals.revenue - request_totals.revenue) > 1e-9 * greatest(1, abs(request_totals.revenue))

)

select * from final
