{#- The arm sums of the custom experiment metrics (experiment.metrics), the shape
    fct_experiment_metric_tests reads for every metric: one row per scope x segment_key x variant x
    custom metric, the ratio sum(numerator) / sum(denominator) over the arm's units (users) and the
    unit moments of its delta-method variance. Per unit (u), from int_recsys_eval__experiment_custom_requests:
      unit request (any, count, sum)  numerator = sum of the request values (capped per request),
                                      denominator = the unit's requests
      unit user (count, sum)          numerator = min(sum of the request values, cap), denominator 1
      unit user (any)                 numerator = 1 when any request has the events, else 0; 1
      mean                            numerator = the events' value, denominator = the events' count
      ratio                           numerator = its numerator metric's unit numerator, denominator =
                                      its denominator metric's unit numerator
    A user-level percentile cap is the percentile of the global unit values pooled over every arm
    (every unit of the population, zeros included); a segment's unit values are capped at it too. -#}
{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set double = recsys_eval.type_double() -%}
{%- set metrics = recsys_eval.experiment_custom_metric_definitions() -%}
{%- set user_capped = metrics | selectattr('unit', 'equalto', 'user')
    | selectattr('type', 'in', ['count', 'sum']) | list -%}
{%- set ratios = metrics | selectattr('type', 'equalto', 'ratio') | list -%}
{#- an any per user: 1 when the unit has one of the events -#}
{%- set indicator_branches = [] -%}
{%- for metric in metrics if metric.type == 'any' and metric.unit == 'user' -%}
{%- do indicator_branches.append('when unit_sums.metric = ' ~ recsys_eval.string_literal(metric.name)
    ~ ' then case when unit_sums.numerator_total > 0 then 1.0e0 else 0.0e0 end') -%}
{%- endfor -%}
{#- then the user-level caps -#}
{%- set numerator_branches = indicator_branches
    + ['when user_caps.cap is not null and unit_sums.numerator_total > user_caps.cap then user_caps.cap'] -%}
{#- the unit's denominator when it is not its requests: 1 per user, or a mean's event count -#}
{%- set denominator_branches = [] -%}
{%- for metric in metrics -%}
{%- if metric.unit == 'user' and metric.type in ['any', 'count', 'sum'] -%}
{%- do denominator_branches.append('when unit_sums.metric = ' ~ recsys_eval.string_literal(metric.name) ~ ' then 1.0e0') -%}
{%- elif metric.type == 'mean' -%}
{%- do denominator_branches.append('when unit_sums.metric = ' ~ recsys_eval.string_literal(metric.name)
    ~ ' then unit_sums.denominator_total') -%}
{%- endif -%}
{%- endfor %}

with

custom_requests as (

    select * from {{ ref('int_recsys_eval__experiment_custom_requests') }}

),

segment_unit_sums as (

    -- one row per metric x experiment segment x variant x unit: its requests and summed values
    select
        metric,
        segment_key,
        variant,
        unit_id,
        is_user_unit,
        count(*) as requests,
        {{ recsys_eval.exact_sum('request_numerator') }} as numerator_total,
        {{ recsys_eval.exact_sum('request_denominator') }} as denominator_total

    from custom_requests
    group by
        metric,
        segment_key,
        variant,
        unit_id,
        is_user_unit

),

global_unit_sums as (

    -- the same unit across the segments of its variant
    select
        metric,
        variant,
        unit_id,
        is_user_unit,
        sum(requests) as requests,
        {{ recsys_eval.exact_sum('numerator_total') }} as numerator_total,
        {{ recsys_eval.exact_sum('denominator_total') }} as denominator_total

    from segment_unit_sums
    group by
        metric,
        variant,
        unit_id,
        is_user_unit

),

unit_sums as (

    select
        'global' as scope,
        '__all__' as segment_key,
        metric,
        variant,
        unit_id,
        is_user_unit,
        requests,
        numerator_total,
        denominator_total

    from global_unit_sums

    union all

    select
        'segment' as scope,
        segment_key,
        metric,
        variant,
        unit_id,
        is_user_unit,
        requests,
        numerator_total,
        denominator_total

    from segment_unit_sums

),

user_caps as (

    -- the user-level caps (unit user, count or sum): a fixed value, or the percentile of the global
    -- unit values pooled over every arm
    {{ recsys_eval.experiment_custom_caps(user_capped, 'global_unit_sums', 'numerator_total') }}

),

base_units as (

    -- per unit and base metric (any, count, sum, mean): its numerator and denominator
    select
        unit_sums.scope,
        unit_sums.segment_key,
        unit_sums.metric,
        unit_sums.variant,
        unit_sums.unit_id,
        unit_sums.is_user_unit,
        unit_sums.requests,
        case
            {%- for branch in numerator_branches %}
            {{ branch }}
            {%- endfor %}
            else unit_sums.numerator_total
        end as unit_numerator,
        {%- if denominator_branches | length == 0 %}
        cast(unit_sums.requests as {{ double }}) as unit_denominator
        {%- else %}
        case
            {%- for branch in denominator_branches %}
            {{ branch }}
            {%- endfor %}
            else cast(unit_sums.requests as {{ double }})
        end as unit_denominator
        {%- endif %}

    from unit_sums
    left join user_caps
        on unit_sums.metric = user_caps.metric

),

units as (

    -- the base metrics, then each ratio: its numerator metric's unit numerator over its denominator
    -- metric's, unit by unit
    select
        scope,
        segment_key,
        metric,
        variant,
        unit_id,
        is_user_unit,
        requests,
        unit_numerator,
        unit_denominator

    from base_units
    {%- for metric in ratios %}

    union all

    select
        numerators.scope,
        numerators.segment_key,
        {{ recsys_eval.string_literal(metric.name) }} as metric,
        numerators.variant,
        numerators.unit_id,
        numerators.is_user_unit,
        numerators.requests,
        numerators.unit_numerator,
        denominators.unit_numerator as unit_denominator

    from base_units as numerators
    inner join base_units as denominators
        on
            numerators.scope = denominators.scope
            and numerators.segment_key = denominators.segment_key
            and numerators.variant = denominators.variant
            and numerators.unit_id = denominators.unit_id
            and numerators.is_user_unit = denominators.is_user_unit
    where
        numerators.metric = {{ recsys_eval.string_literal(metric.numerator) }}
        and denominators.metric = {{ recsys_eval.string_literal(metric.denominator) }}
    {%- endfor %}

),

arm_sums as (

    select
        scope,
        segment_key,
        variant,
        metric,
        count(*) as units,
        sum(requests) as exposures,
        {{ recsys_eval.exact_sum('unit_numerator') }} as numerator_sum,
        {{ recsys_eval.exact_sum('unit_numerator * unit_numerator') }} as numerator_squared_sum,
        {{ recsys_eval.exact_sum('unit_numerator * unit_denominator') }} as cross_sum,
        {{ recsys_eval.exact_sum('unit_denominator') }} as denominator_sum,
        {{ recsys_eval.exact_sum('unit_denominator * unit_denominator') }} as denominator_squared_sum

    from units
    group by
        scope,
        segment_key,
        variant,
        metric

),

definitions as (

    -- each custom metric's place, label and kind (compile-time constants, as quoted literals)
    select
        cast(null as {{ dbt.type_string() }}) as metric,
        cast(null as {{ dbt.type_bigint() }}) as metric_position,
        cast(null as {{ dbt.type_string() }}) as metric_label,
        cast(null as {{ dbt.type_string() }}) as metric_kind

    from arm_sums
    where 1 = 0
    {%- for metric in metrics %}

    union all

    select
        {{ recsys_eval.string_literal(metric.name) }} as metric,
        cast({{ metric.position }} as {{ dbt.type_bigint() }}) as metric_position,
        {{ recsys_eval.string_literal(metric.label) }} as metric_label,
        {{ recsys_eval.string_literal(metric.kind) }} as metric_kind
    {%- endfor %}

),

final as (

    select
        arm_sums.scope,
        arm_sums.segment_key,
        arm_sums.variant,
        arm_sums.metric,
        definitions.metric_position,
        definitions.metric_label,
        definitions.metric_kind,
        cast(arm_sums.units as {{ dbt.type_bigint() }}) as units,
        cast(arm_sums.exposures as {{ dbt.type_bigint() }}) as exposures,
        cast(arm_sums.numerator_sum as {{ double }}) as numerator_sum,
        cast(arm_sums.numerator_squared_sum as {{ double }}) as numerator_squared_sum,
        cast(arm_sums.cross_sum as {{ double }}) as cross_sum,
        cast(arm_sums.denominator_sum as {{ double }}) as denominator_sum,
        cast(arm_sums.denominator_squared_sum as {{ double }}) as denominator_squared_sum

    from arm_sums
    inner join definitions
        on arm_sums.metric = definitions.metric

)

select * from final
