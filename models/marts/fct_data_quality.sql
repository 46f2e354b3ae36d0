{#- The reference's data_quality section (§3), once globally and once per tenant x surface. -#}
{%- set using_assignments = recsys_eval.using_source('assignments') -%}

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

{% if using_assignments -%}
assignments as (

    select * from {{ ref('stg_recsys_eval__assignments') }}

),

assignments_latest as (

    select * from {{ ref('int_recsys_eval__assignments_latest') }}

),
{%- endif %}

exposure_stats as (

    -- every exposure row in the window, duplicates included, in its own tenant x surface
    select
        tenant,
        surface,
        count(*) as exposure_total,
        sum(case when request_id = '' or item_count = 0 then 1 else 0 end) as exposure_missing

    from exposures
    group by tenant, surface

),

request_stats as (

    -- kept (first-seen) exposures
    select
        tenant,
        surface,
        count(*) as requests_kept,
        sum(case when has_outcome then 1 else 0 end) as exposures_joined,
        sum(case when is_assigned then 1 else 0 end) as assigned_exposures

    from requests
    group by tenant, surface

),

outcome_stats as (

    -- outcomes inherit their exposure's tenant x surface; orphans get empty strings
    select
        tenant,
        surface,
        count(*) as outcome_total,
        sum(case when request_id = '' or item_id = '' then 1 else 0 end) as outcome_missing,
        sum(case when is_joined then 1 else 0 end) as outcomes_joined

    from outcomes
    group by tenant, surface

),

{% if using_assignments -%}
assignments_segmented as (

    -- all assignment rows, whatever their experiment; tenant x surface from the kept exposure
    select
        assignments.request_id,
        assignments.variant,
        coalesce(requests.tenant, '') as tenant,
        coalesce(requests.surface, '') as surface

    from assignments
    left join requests
        on assignments.request_id = requests.request_id

),

assignment_stats as (

    select
        tenant,
        surface,
        count(*) as assignment_total,
        sum(case when request_id = '' or variant = '' then 1 else 0 end) as assignment_missing

    from assignments_segmented
    group by tenant, surface

),

assignments_latest_segmented as (

    select
        assignments_latest.request_id,
        coalesce(requests.tenant, '') as tenant,
        coalesce(requests.surface, '') as surface

    from assignments_latest
    left join requests
        on assignments_latest.request_id = requests.request_id

),

assignment_population_stats as (

    -- valid assignments matching the experiment filter: one per distinct request_id
    select
        tenant,
        surface,
        count(*) as assignments_count

    from assignments_latest_segmented
    group by tenant, surface

),
{%- endif %}

segments as (

    -- every tenant x surface seen anywhere (tenant and surface are never null upstream)
    select
        tenant,
        surface
    from exposure_stats

    union distinct

    select
        tenant,
        surface
    from outcome_stats
    {% if using_assignments %}
    union distinct

    select
        tenant,
        surface
    from assignment_stats
    {% endif %}
),

segment_counts as (

    select
        'tenant_surface' as scope,
        segments.tenant,
        segments.surface,
        cast(coalesce(exposure_stats.exposure_total, 0) as {{ dbt.type_bigint() }}) as exposure_total,
        cast(coalesce(exposure_stats.exposure_missing, 0) as {{ dbt.type_bigint() }}) as exposure_missing,
        cast(coalesce(outcome_stats.outcome_total, 0) as {{ dbt.type_bigint() }}) as outcome_total,
        cast(coalesce(outcome_stats.outcome_missing, 0) as {{ dbt.type_bigint() }}) as outcome_missing,
        {% if using_assignments -%}
        cast(coalesce(assignment_stats.assignment_total, 0) as {{ dbt.type_bigint() }}) as assignment_total,
        cast(coalesce(assignment_stats.assignment_missing, 0) as {{ dbt.type_bigint() }}) as assignment_missing,
        cast(
            coalesce(assignment_population_stats.assignments_count, 0) as {{ dbt.type_bigint() }}
        ) as assignments_count,
        {%- else -%}
        cast(0 as {{ dbt.type_bigint() }}) as assignment_total,
        cast(0 as {{ dbt.type_bigint() }}) as assignment_missing,
        cast(0 as {{ dbt.type_bigint() }}) as assignments_count,
        {%- endif %}
        cast(coalesce(request_stats.requests_kept, 0) as {{ dbt.type_bigint() }}) as requests_kept,
        cast(coalesce(request_stats.exposures_joined, 0) as {{ dbt.type_bigint() }}) as exposures_joined,
        cast(coalesce(outcome_stats.outcomes_joined, 0) as {{ dbt.type_bigint() }}) as outcomes_joined,
        cast(coalesce(request_stats.assigned_exposures, 0) as {{ dbt.type_bigint() }}) as assigned_exposures

    from segments
    left join exposure_stats
        on
            segments.tenant = exposure_stats.tenant
            and segments.surface = exposure_stats.surface
    left join request_stats
        on
            segments.tenant = request_stats.tenant
            and segments.surface = request_stats.surface
    left join outcome_stats
        on
            segments.tenant = outcome_stats.tenant
            and segments.surface = outcome_stats.surface
    {% if using_assignments -%}
    left join assignment_stats
        on
            segments.tenant = assignment_stats.tenant
            and segments.surface = assignment_stats.surface
    left join assignment_population_stats
        on
            segments.tenant = assignment_population_stats.tenant
            and segments.surface = assignment_population_stats.surface
    {%- endif %}

),

global_counts as (

    -- every row belongs to exactly one tenant x surface, so the global row is their sum;
    -- it exists (with zeros) even when every input is empty
    select
        'global' as scope,
        '' as tenant,
        '' as surface,
        cast(coalesce(sum(exposure_total), 0) as {{ dbt.type_bigint() }}) as exposure_total,
        cast(coalesce(sum(exposure_missing), 0) as {{ dbt.type_bigint() }}) as exposure_missing,
        cast(coalesce(sum(outcome_total), 0) as {{ dbt.type_bigint() }}) as outcome_total,
        cast(coalesce(sum(outcome_missing), 0) as {{ dbt.type_bigint() }}) as outcome_missing,
        cast(coalesce(sum(assignment_total), 0) as {{ dbt.type_bigint() }}) as assignment_total,
        cast(coalesce(sum(assignment_missing), 0) as {{ dbt.type_bigint() }}) as assignment_missing,
        cast(coalesce(sum(assignments_count), 0) as {{ dbt.type_bigint() }}) as assignments_count,
        cast(coalesce(sum(requests_kept), 0) as {{ dbt.type_bigint() }}) as requests_kept,
        cast(coalesce(sum(exposures_joined), 0) as {{ dbt.type_bigint() }}) as exposures_joined,
        cast(coalesce(sum(outcomes_joined), 0) as {{ dbt.type_bigint() }}) as outcomes_joined,
        cast(coalesce(sum(assigned_exposures), 0) as {{ dbt.type_bigint() }}) as assigned_exposures

    from segment_counts

),

counts as (

    select * from global_counts

    union all

    select * from segment_counts

),

final as (

    select
        scope,
        case when scope = 'global' then cast(null as {{ dbt.type_string() }}) else tenant end as tenant,
        case when scope = 'global' then cast(null as {{ dbt.type_string() }}) else surface end as surface,

        ----------  completeness
        exposure_total,
        exposure_missing,
        {{ recsys_eval.safe_divide('exposure_missing', 'exposure_total') }} as exposure_missing_rate,
        outcome_total,
        outcome_missing,
        {{ recsys_eval.safe_divide('outcome_missing', 'outcome_total') }} as outcome_missing_rate,
        assignment_total,
        assignment_missing,
        {{ recsys_eval.safe_divide('assignment_missing', 'assignment_total') }} as assignment_missing_rate,

        ----------  join integrity
        exposure_total as exposure_count,
        outcome_total as outcome_count,
        assignments_count,
        exposure_total - requests_kept as duplicate_exposure_request_ids,
        requests_kept,
        exposures_joined,
        outcomes_joined,
        assigned_exposures,
        {{ recsys_eval.safe_divide('exposures_joined', 'exposure_total') }} as exposure_join_rate,
        {{ recsys_eval.safe_divide('outcomes_joined', 'outcome_total') }} as outcome_join_rate,
        {{ recsys_eval.safe_divide('assigned_exposures', 'assignments_count') }} as assignment_join_rate

    from counts

)

select * from final
