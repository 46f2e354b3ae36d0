{#-
    Impossible states in fct_data_quality (error): a part larger than its whole, counts that do not
    add up, a global row that does not match the intermediate models, or not exactly one global row.
-#}
with

data_quality as (

    select * from {{ ref('fct_data_quality') }}

),

exposures as (

    select * from {{ ref('int_recsys_eval__exposures_windowed') }}

),

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_joined') }}

),

kept_exposures as (

    -- the kept exposure of each request_id (int_recsys_eval__requests' rows, without its joins)
    select * from {{ ref('int_recsys_eval__exposures_first_seen') }}

),

inconsistent_rows as (

    select
        scope,
        tenant,
        surface,
        'part exceeds whole' as problem

    from data_quality
    where
        exposure_missing > exposure_total
        or outcome_missing > outcome_total
        or assignment_missing > assignment_total
        or exposure_count != exposure_total
        or outcome_count != outcome_total
        or requests_kept > exposure_count
        or exposures_joined > requests_kept
        or outcomes_joined > outcome_count
        or assigned_exposures > assignments_count
        or assignments_count > assignment_total - assignment_missing
        or duplicate_exposure_request_ids != exposure_count - requests_kept
        or duplicate_exposure_request_ids < 0

),

exposure_rows as (

    select count(*) as exposure_total
    from exposures

),

outcome_rows as (

    select
        count(*) as outcome_total,
        sum(case when is_joined then 1 else 0 end) as outcomes_joined
    from outcomes

),

request_rows as (

    select count(*) as requests_kept
    from kept_exposures

),

global_row as (

    select * from data_quality
    where scope = 'global'

),

unbalanced as (

    -- the global row is the sum of the segments; check it against the row counts it summarises
    select
        global_row.scope,
        global_row.tenant,
        global_row.surface,
        'global row does not match the intermediate models' as problem

    from global_row
    cross join exposure_rows
    cross join outcome_rows
    cross join request_rows
    where
        global_row.exposure_total != exposure_rows.exposure_total
        or global_row.outcome_total != outcome_rows.outcome_total
        or global_row.outcomes_joined != coalesce(outcome_rows.outcomes_joined, 0)
        or global_row.requests_kept != request_rows.requests_kept

),

global_rows as (

    select
        cast(null as {{ dbt.type_string() }}) as scope,
        cast(null as {{ dbt.type_string() }}) as tenant,
        cast(null as {{ dbt.type_string() }}) as surface,
        'not exactly one global row' as problem

    from data_quality
    having sum(case when scope = 'global' then 1 else 0 end) != 1

),

final as (

    select * from inconsistent_rows
    union all
    select * from unbalanced
    union all
    select * from global_rows

)

select * from final
