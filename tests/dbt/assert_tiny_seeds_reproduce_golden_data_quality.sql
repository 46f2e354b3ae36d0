{#-
    The bundled tiny seeds reproduce the reference's golden data_quality numbers
    (golden/experiment.json; offline.json has the same values with assignments off), on every
    target: this is what makes the Spark build comparable to DuckDB. Runs only on the seeds with
    the default vars.
-#}
{{ config(
    enabled=(
        recsys_eval.config_var('recsys_eval__source', 'seeds') == 'seeds'
        and recsys_eval.config_var('recsys_eval__test_window_start', none) is none
        and recsys_eval.config_var('recsys_eval__experiment_id', none) is none
        and recsys_eval.using_source('assignments')
        and recsys_eval.config_var('recsys_eval__outcomes_seed', 'recsys_eval_tiny_outcomes') == 'recsys_eval_tiny_outcomes'
    )
) }}

with

data_quality as (

    select * from {{ ref('fct_data_quality') }}
    where scope = 'global'

),

expected as (

    select
        3 as exposure_total,
        1 as exposure_missing,
        {{ recsys_eval.safe_divide('1', '3') }} as exposure_missing_rate,
        2 as outcome_total,
        0 as outcome_missing,
        3 as assignment_total,
        0 as assignment_missing,
        3 as assignments_count,
        {{ recsys_eval.safe_divide('2', '3') }} as exposure_join_rate

),

compared as (

    select
        data_quality.exposure_total,
        data_quality.exposure_join_rate
    from data_quality
    cross join expected
    where
        data_quality.exposure_total != expected.exposure_total
        or data_quality.exposure_missing != expected.exposure_missing
        or abs(data_quality.exposure_missing_rate - expected.exposure_missing_rate) > 1e-12
        or data_quality.outcome_total != expected.outcome_total
        or data_quality.outcome_missing != expected.outcome_missing
        or data_quality.outcome_missing_rate != 0
        or data_quality.assignment_total != expected.assignment_total
        or data_quality.assignment_missing != expected.assignment_missing
        or data_quality.assignments_count != expected.assignments_count
        or abs(data_quality.assignment_join_rate - 1) > 1e-12
        or abs(data_quality.exposure_join_rate - expected.exposure_join_rate) > 1e-12
        or abs(data_quality.outcome_join_rate - 1) > 1e-12
        or data_quality.duplicate_exposure_request_ids != 0

),

final as (

    select * from compared

)

select * from final
