{%- set significance = recsys_eval.offline_significance() %}

with

request_metrics as (

    select * from {{ ref('fct_offline_request_metrics') }}

),

baseline_request_metrics as (

    -- the baseline run's per-request values (raw.baseline_request_metrics, written by the CLI from the
    -- baseline report's request-metrics file) when var recsys_eval__offline_significance.enabled, else none
    {% if significance.enabled -%}
    select
        request_id,
        lower(metric_name) as metric_name,
        cast(metric_value as {{ recsys_eval.type_double() }}) as metric_value

    from {{ source('recsys_eval', 'baseline_request_metrics') }}
    {%- else -%}
    select
        cast(null as {{ dbt.type_string() }}) as request_id,
        cast(null as {{ dbt.type_string() }}) as metric_name,
        cast(null as {{ recsys_eval.type_double() }}) as metric_value

    from (select 1 as placeholder) as disabled
    where 1 = 0
    {%- endif %}

),

current_metrics as (

    -- one row per per-case metric of this run: its first position when a spec is repeated
    select
        metric_name,
        min(metric_position) as metric_position

    from request_metrics
    group by metric_name

),

current_values as (

    select
        request_metrics.request_id,
        request_metrics.metric_name,
        request_metrics.metric_value

    from request_metrics
    inner join current_metrics
        on
            request_metrics.metric_name = current_metrics.metric_name
            and request_metrics.metric_position = current_metrics.metric_position

),

baseline_values as (

    -- only the metrics this run computes
    select baseline_request_metrics.*

    from baseline_request_metrics
    inner join current_metrics
        on baseline_request_metrics.metric_name = current_metrics.metric_name

),

paired as (

    select
        coalesce(current_values.request_id, baseline_values.request_id) as request_id,
        coalesce(current_values.metric_name, baseline_values.metric_name) as metric_name,
        current_values.metric_value as current_value,
        baseline_values.metric_value as baseline_value

    from current_values
    full outer join baseline_values
        on
            current_values.request_id = baseline_values.request_id
            and current_values.metric_name = baseline_values.metric_name

),

final as (

    -- every request evaluated by either run, per per-case metric; the difference only when both have it
    select
        paired.request_id,
        current_metrics.metric_position,
        paired.metric_name,
        paired.current_value,
        paired.baseline_value,
        paired.current_value - paired.baseline_value as difference,
        case
            when paired.current_value is not null and paired.baseline_value is not null then 'paired'
            when paired.current_value is not null then 'current_only'
            else 'baseline_only'
        end as pair_status

    from paired
    inner join current_metrics
        on paired.metric_name = current_metrics.metric_name

)

select * from final
