{#-
    Warns when a scope's data looks broken: its outcome join rate (outcomes whose request_id matches
    an exposure) or, with assignments, its assignment join rate (assignments with a kept exposure) is
    below var recsys_eval__min_join_rate (default 0.95, the docs' level). The exposure join rate (the
    share of exposures with any outcome) is close to a click rate on healthy data, so it is not tested.
-#}
{{ config(severity='warn') }}

{%- set min_join_rate = recsys_eval.config_var('recsys_eval__min_join_rate', 0.95) %}

with

data_quality as (

    select * from {{ ref('fct_data_quality') }}

),

below_minimum as (

    select
        scope,
        tenant,
        surface,
        outcome_join_rate,
        assignment_join_rate

    from data_quality
    where
        (outcome_count > 0 and outcome_join_rate < {{ min_join_rate }})
        or (assignments_count > 0 and assignment_join_rate < {{ min_join_rate }})

)

select * from below_minimum
