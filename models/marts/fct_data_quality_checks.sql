{#- Checks the reference does not make, as one long table: check x tenant x surface. -#}
-- The item checks count stg_recsys_eval__exposure_items' rows on the lists themselves; the item view
-- stays in the lineage (and its tests in the selections that build this mart):
-- depends_on: {{ ref('stg_recsys_eval__exposure_items') }}
with

exposures as (

    select * from {{ ref('int_recsys_eval__exposures_windowed') }}

),

kept_exposures as (

    -- the kept exposure of each request_id: int_recsys_eval__requests' rows without its outcome and
    -- assignment joins (they keep every row, so counting needs neither)
    select * from {{ ref('int_recsys_eval__exposures_first_seen') }}

),

outcomes as (

    select * from {{ ref('int_recsys_eval__outcomes_joined') }}

),

check_catalog as (

    select
        'orphan_outcomes' as check_name,
        'warn' as severity,
        'outcome rows whose request_id has no exposure; they only lower outcome_join_rate' as description

    union all

    select
        'outcome_item_not_shown' as check_name,
        'warn' as severity,
        'joined outcome rows whose item_id is not in the exposed list (they still join the request)' as description

    union all

    select
        'outcome_before_exposure' as check_name,
        'warn' as severity,
        'joined outcome rows timestamped before their exposure (clock skew or a wrong request_id)' as description

    union all

    select
        'duplicate_items_in_list' as check_name,
        'warn' as severity,
        'exposure rows whose list shows the same item_id more than once' as description

    union all

    select
        'rank_gaps' as check_name,
        'warn' as severity,
        'exposure rows whose sorted ranks are not exactly 1..n' as description

    union all

    select
        'propensity_out_of_range' as check_name,
        'error' as severity,
        'exposed items with a propensity, logging_propensity or target_propensity present and <= 0 or > 1'
            as description

    union all

    select
        'duplicate_exposure_request_ids' as check_name,
        'error' as severity,
        'exposure rows dropped because an earlier exposure had the same request_id (a logging bug)' as description

    union all

    select
        'duplicate_outcome_rows' as check_name,
        'warn' as severity,
        'outcome rows identical to an earlier row (request, user, item, event, value, ts); they double-count'
            as description

),

request_checks as (

    select
        tenant,
        surface,
        count(*) as requests_kept

    from kept_exposures
    group by tenant, surface

),

exposure_list_checks as (

    -- one row per windowed exposure row; the list checks run on the list itself (no item rows): a
    -- duplicate item_id, sorted ranks (a missing rank read as 0) that are not exactly 1..n
    select
        tenant,
        surface,
        count(*) as total_rows,
        sum({{ recsys_eval.exposure_list_has_duplicate_items('items') }}) as duplicate_items_in_list,
        sum({{ recsys_eval.exposure_list_has_rank_gap('items') }}) as rank_gaps

    from exposures
    group by tenant, surface

),

exposure_checks as (

    -- dropped duplicates per segment = exposure rows - kept rows, both in their own segment
    select
        exposure_list_checks.tenant,
        exposure_list_checks.surface,
        exposure_list_checks.total_rows,
        exposure_list_checks.duplicate_items_in_list,
        exposure_list_checks.rank_gaps,
        exposure_list_checks.total_rows - coalesce(request_checks.requests_kept, 0)
            as duplicate_exposure_request_ids

    from exposure_list_checks
    left join request_checks
        on
            exposure_list_checks.tenant = request_checks.tenant
            and exposure_list_checks.surface = request_checks.surface

),

item_checks as (

    -- one row per exposed item of the windowed exposure rows, counted on the lists; segments without
    -- any item have no row
    select
        tenant,
        surface,
        sum(item_count) as total_rows,
        sum({{ recsys_eval.exposure_list_out_of_range_count('items') }}) as propensity_out_of_range

    from exposures
    where item_count > 0
    group by tenant, surface

),

outcome_copies as (

    select
        tenant,
        surface,
        is_joined,
        is_item_shown,
        case when occurred_at < exposed_at then 1 else 0 end as is_before_exposure,
        row_number() over (
            partition by request_id, user_id, item_id, event_type, event_value, occurred_at
            order by load_seq, line_no
        ) as copy_seq

    from outcomes

),

outcome_checks as (

    select
        tenant,
        surface,
        count(*) as total_rows,
        sum(case when is_joined then 0 else 1 end) as orphan_outcomes,
        sum(case when copy_seq > 1 then 1 else 0 end) as duplicate_outcome_rows,
        sum(case when is_joined then 1 else 0 end) as joined_rows,
        sum(case when is_joined and not is_item_shown then 1 else 0 end) as outcome_item_not_shown,
        sum(case when is_joined then is_before_exposure else 0 end) as outcome_before_exposure

    from outcome_copies
    group by tenant, surface

),

unioned as (

    select
        tenant,
        surface,
        'orphan_outcomes' as check_name,
        orphan_outcomes as failing_rows,
        total_rows
    from outcome_checks

    union all

    select
        tenant,
        surface,
        'duplicate_outcome_rows' as check_name,
        duplicate_outcome_rows as failing_rows,
        total_rows
    from outcome_checks

    union all

    select
        tenant,
        surface,
        'outcome_item_not_shown' as check_name,
        outcome_item_not_shown as failing_rows,
        joined_rows as total_rows
    from outcome_checks
    where joined_rows > 0

    union all

    select
        tenant,
        surface,
        'outcome_before_exposure' as check_name,
        outcome_before_exposure as failing_rows,
        joined_rows as total_rows
    from outcome_checks
    where joined_rows > 0

    union all

    select
        tenant,
        surface,
        'duplicate_items_in_list' as check_name,
        duplicate_items_in_list as failing_rows,
        total_rows
    from exposure_checks

    union all

    select
        tenant,
        surface,
        'rank_gaps' as check_name,
        rank_gaps as failing_rows,
        total_rows
    from exposure_checks

    union all

    select
        tenant,
        surface,
        'duplicate_exposure_request_ids' as check_name,
        duplicate_exposure_request_ids as failing_rows,
        total_rows
    from exposure_checks

    union all

    select
        tenant,
        surface,
        'propensity_out_of_range' as check_name,
        propensity_out_of_range as failing_rows,
        total_rows
    from item_checks

),

final as (

    select
        unioned.check_name,
        unioned.tenant,
        unioned.surface,
        cast(unioned.failing_rows as {{ dbt.type_bigint() }}) as failing_rows,
        cast(unioned.total_rows as {{ dbt.type_bigint() }}) as total_rows,
        {{ recsys_eval.safe_divide('unioned.failing_rows', 'unioned.total_rows') }} as failing_rate,
        check_catalog.severity,
        check_catalog.description

    from unioned
    inner join check_catalog
        on unioned.check_name = check_catalog.check_name

)

select * from final
