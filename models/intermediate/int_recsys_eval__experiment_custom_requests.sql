{#- The per-request values of the custom experiment metrics (experiment.metrics): one row per custom
    metric of type any, count, sum or mean x assigned request; none without custom metrics. Metric
    names reach SQL only as quoted literals; event types are validated to click or conversion and
    pick a fixed column of int_recsys_eval__experiment_requests. -#}
{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set double = recsys_eval.type_double() -%}
{%- set counts = {'click': 'click_count', 'conversion': 'conversion_count'} -%}
{%- set values = {'click': 'click_value', 'conversion': 'revenue'} -%}
{%- set metrics = recsys_eval.experiment_custom_metric_definitions()
    | selectattr('type', 'in', ['any', 'count', 'sum', 'mean']) | list -%}
{%- set request_capped = metrics | selectattr('unit', 'equalto', 'request')
    | selectattr('type', 'in', ['count', 'sum']) | list %}

with

experiment_requests as (

    select * from {{ ref('int_recsys_eval__experiment_requests') }}

),

request_values as (

    -- per metric and request: the numerator (the events' count, their value summed, or 1 when the
    -- request has one of the events) and the denominator (mean: the events' count; else 1 request)
    {%- if metrics | length == 0 %}
    select
        cast(null as {{ dbt.type_string() }}) as metric,
        variant,
        segment_key,
        unit_id,
        is_user_unit,
        covariate_value,
        cast(null as {{ double }}) as request_numerator,
        cast(null as {{ double }}) as request_denominator

    from experiment_requests
    where 1 = 0
    {%- endif %}
    {%- for metric in metrics %}
    {%- set count_columns = [] -%}
    {%- set value_columns = [] -%}
    {%- for event_type in metric.event_types -%}
    {%- do count_columns.append(counts[event_type]) -%}
    {%- do value_columns.append(values[event_type]) -%}
    {%- endfor -%}
    {%- set event_count = '(' ~ count_columns | join(' + ') ~ ')' -%}
    {%- set event_value = '(' ~ value_columns | join(' + ') ~ ')' %}
    select
        {{ recsys_eval.string_literal(metric.name) }} as metric,
        variant,
        segment_key,
        unit_id,
        is_user_unit,
        covariate_value,
        {%- if metric.type == 'any' %}
        cast(case when {{ event_count }} > 0 then 1 else 0 end as {{ double }}) as request_numerator,
        {%- elif metric.type == 'count' %}
        cast({{ event_count }} as {{ double }}) as request_numerator,
        {%- else %}
        cast({{ event_value }} as {{ double }}) as request_numerator,
        {%- endif %}
        cast({{ event_count if metric.type == 'mean' else '1' }} as {{ double }}) as request_denominator

    from experiment_requests
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

),

caps as (

    -- the request-level caps (unit request, count or sum): a fixed value, or the percentile of the
    -- metric's per-request values pooled over every arm and segment (every assigned request,
    -- zeros included)
    {{ recsys_eval.experiment_custom_caps(request_capped, 'request_values', 'request_numerator') }}

),

final as (

    select
        request_values.metric,
        request_values.variant,
        request_values.segment_key,
        request_values.unit_id,
        request_values.is_user_unit,
        request_values.covariate_value,
        -- winsorized at the cap when the metric has a request-level one
        cast(
            case
                when caps.cap is not null and request_values.request_numerator > caps.cap then caps.cap
                else request_values.request_numerator
            end as {{ double }}
        ) as request_numerator,
        request_values.request_denominator,
        caps.cap as request_cap

    from request_values
    left join caps
        on request_values.metric = caps.metric

)

select * from final
