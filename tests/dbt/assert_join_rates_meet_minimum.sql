{#-
    Warns when a scope's exposure or outcome join rate is below var recsys_eval__min_join_rate
    (default 0.95: the docs trust KPI movement only above it). The tiny dataset warns (2/3).
-#}
{{ config(severity='warn') }}

with

data_quality as (

    select * from {{ ref('fct_data_quality') }}

),

below_minimum as (

    select
        scope,
        tenant,
        surface,
        exposure_join_rate,
        outcome_join_rate

    from data_quality
    where
        (exposure_count > 0 and exposure_join_rate < {{ recsys_eval.config_var('recsys_eval__min_join_rate', 0.95) }})
        or (outcome_count > 0 and outcome_join_rate < {{ recsys_eval.config_var('recsys_eval__min_join_rate', 0.95) }})

)

select * from below_minimum
