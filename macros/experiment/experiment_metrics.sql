{#-
    experiment_metric_definitions(): the one definition of every experiment metric (issue 20 item 1),
    used by fct_experiment_metric_tests (the tests the playbook decides on), fct_experiment_cuped_tests
    and fct_experiment_decision. A list of dicts, in report order:
      name          the metric's one name everywhere (marts, report, decision, config)
      label         what it means, for a newcomer (the report's label)
      kind          ratio (a sum of events over a sum of requests: can exceed 1) | proportion (a share
                    of requests, in [0, 1]) | mean (a sum over users divided by the number of users)
      numerator     the per-request tally summed in int_recsys_eval__experiment_variant_stats:
                    clicks, clicked_requests, conversions, converted_requests or revenue
      denominator   requests | users (the randomization unit)
      cuped_outcome the per-request column of int_recsys_eval__experiment_requests that CUPED adjusts
                    for this metric (none: no CUPED test)
    Every metric is analysed at the randomization unit (the user): sum(numerator) / sum(denominator)
    over the arm's users, with the delta-method variance of that ratio (experiment_ratio_unit_variance);
    a per-user mean is the ratio whose denominator is 1 per user. The reference's pooled z-test of ctr
    and conversion_rate (fct_experiment_significance) is kept unchanged for `policy: reference`.
    Not SQL, so not dispatched.
-#}
{% macro experiment_metric_definitions() -%}
    {{ return([
        {'name': 'ctr', 'label': 'clicks per request', 'kind': 'ratio',
            'numerator': 'clicks', 'denominator': 'requests', 'cuped_outcome': 'click_count'},
        {'name': 'click_share', 'label': 'share of requests with a click', 'kind': 'proportion',
            'numerator': 'clicked_requests', 'denominator': 'requests', 'cuped_outcome': 'clicked'},
        {'name': 'conversion_rate', 'label': 'conversions per request', 'kind': 'ratio',
            'numerator': 'conversions', 'denominator': 'requests', 'cuped_outcome': 'conversion_count'},
        {'name': 'conversion_share', 'label': 'share of requests with a conversion', 'kind': 'proportion',
            'numerator': 'converted_requests', 'denominator': 'requests', 'cuped_outcome': 'converted'},
        {'name': 'revenue_per_request', 'label': 'revenue per request', 'kind': 'ratio',
            'numerator': 'revenue', 'denominator': 'requests', 'cuped_outcome': 'revenue'},
        {'name': 'revenue_per_user', 'label': 'revenue per user', 'kind': 'mean',
            'numerator': 'revenue', 'denominator': 'users', 'cuped_outcome': none},
    ]) }}
{%- endmacro %}


{#- experiment_metric_names(): the defined metrics' names, in order. Not SQL, so not dispatched. -#}
{% macro experiment_metric_names() -%}
    {{ return(recsys_eval.experiment_metric_definitions() | map(attribute='name') | list) }}
{%- endmacro %}


{#-
    experiment_custom_metric_definitions(): the custom metrics of var recsys_eval__experiment_custom_metrics
    (the CLI's experiment.metrics, recsys_eval.experiment_custom_metrics), validated again here so a
    bad value fails compilation naming the var. A list of dicts in declaration order:
      name, label       the metric's name ([a-z][a-z0-9_]{0,62}, not a built-in name) and its label;
                        both reach SQL only as quoted literals (string_literal), never as identifiers
      type              any | count | sum | mean | ratio
      event_types       a subset of click, conversion (the outcome contract's types)
      unit              request | user (any, count, sum)
      numerator, denominator   ratio: the names of two custom metrics of type any, count or sum
      cap_percentile, cap_value   winsorization of the unit's value (count, sum; at most one)
      role              primary | secondary | guardrail; margin, relative: the guardrail's margin
      higher_is_better  boolean
      kind              ratio | proportion | mean (as experiment_metric_definitions)
      position          the metric's place after the built-in metrics
      cuped             true for the per-request metrics CUPED adjusts (unit request, any/count/sum)
    Not SQL, so not dispatched.
-#}
{% macro experiment_custom_metric_definitions() -%}
    {%- set var_name = 'var recsys_eval__experiment_custom_metrics' -%}
    {%- set raw = recsys_eval.config_var('recsys_eval__experiment_custom_metrics', []) -%}
    {%- set raw = [] if raw is none or raw == '' else raw -%}
    {%- if raw is mapping or raw is string or raw is not iterable -%}
        {{ exceptions.raise_compiler_error(var_name ~ " must be a list of metric definitions, got: " ~ raw) }}
    {%- endif -%}
    {%- set builtin = recsys_eval.experiment_metric_names() + ['error_rate', 'empty_rate', 'latency_mean', 'latency_p95_ms'] -%}
    {%- set offset = recsys_eval.experiment_metric_names() | length -%}
    {%- set out = [] -%}
    {%- set seen = [] -%}
    {%- for entry in raw -%}
        {%- if entry is not mapping -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": each entry must be a mapping, got: " ~ entry) }}
        {%- endif -%}
        {%- set name = entry.get('name') -%}
        {%- if name is not string or not modules.re.match('^[a-z][a-z0-9_]{0,62}$', name) or name != name | trim -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": invalid metric name " ~ (name | string | tojson)) }}
        {%- endif -%}
        {%- if name in builtin or name in seen -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": the name '" ~ name ~ "' is taken") }}
        {%- endif -%}
        {%- do seen.append(name) -%}
        {%- set type = entry.get('type') -%}
        {%- if type not in ['any', 'count', 'sum', 'mean', 'ratio'] -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': unknown type " ~ (type | string | tojson)) }}
        {%- endif -%}
        {%- set event_types = entry.get('event_types') or [] -%}
        {%- for event_type in event_types if event_type not in ['click', 'conversion'] -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': unknown event type " ~ (event_type | string | tojson)) }}
        {%- endfor -%}
        {%- if type != 'ratio' and event_types | length == 0 -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "' needs event_types") }}
        {%- endif -%}
        {%- set unit = entry.get('unit') or 'request' -%}
        {%- if unit not in ['request', 'user'] -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': unit must be request or user") }}
        {%- endif -%}
        {%- set cap_percentile = entry.get('cap_percentile') -%}
        {%- set cap_value = entry.get('cap_value') -%}
        {%- if cap_percentile is not none and (cap_percentile is boolean or cap_percentile is not number
                or cap_percentile <= 0 or cap_percentile >= 1) -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': cap_percentile must be in (0, 1)") }}
        {%- endif -%}
        {%- if cap_value is not none and (cap_value is boolean or cap_value is not number or cap_value < 0) -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': cap_value must be a number >= 0") }}
        {%- endif -%}
        {%- if (cap_percentile is not none or cap_value is not none) and type not in ['count', 'sum'] -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': a cap applies to count and sum only") }}
        {%- endif -%}
        {%- if cap_percentile is not none and cap_value is not none -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': one cap, not two") }}
        {%- endif -%}
        {%- set role = entry.get('role') or 'secondary' -%}
        {%- if role not in ['primary', 'secondary', 'guardrail'] -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': unknown role") }}
        {%- endif -%}
        {%- set margin = entry.get('margin') -%}
        {%- if role == 'guardrail' and (margin is none or margin is boolean or margin is not number or margin < 0) -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': a guardrail needs a margin >= 0") }}
        {%- endif -%}
        {%- for flag in ['relative', 'higher_is_better'] if entry.get(flag) is not none and entry.get(flag) is not boolean -%}
            {{ exceptions.raise_compiler_error(var_name ~ ": metric '" ~ name ~ "': " ~ flag ~ " must be true or false") }}
        {%- endfor -%}
        {%- if type in ['any'] -%}
            {%- set kind = 'proportion' -%}
        {%- elif type in ['count', 'sum'] and unit == 'user' -%}
            {%- set kind = 'mean' -%}
        {%- else -%}
            {%- set kind = 'ratio' -%}
        {%- endif -%}
        {%- do out.append({
            'name': name,
            'label': entry.get('label') or name,
            'type': type,
            'event_types': event_types,
            'unit': unit,
            'numerator': entry.get('numerator') or '',
            'denominator': entry.get('denominator') or '',
            'cap_percentile': cap_percentile,
            'cap_value': cap_value,
            'role': role,
            'margin': margin,
            'relative': entry.get('relative') is sameas true,
            'higher_is_better': entry.get('higher_is_better') is not sameas false,
            'kind': kind,
            'position': offset + loop.index,
            'cuped': type in ['any', 'count', 'sum'] and unit == 'request',
        }) -%}
    {%- endfor -%}
    {%- for metric in out if metric.type == 'ratio' -%}
        {%- for part in [metric.numerator, metric.denominator] -%}
            {%- set found = out | selectattr('name', 'equalto', part) | selectattr('type', 'in', ['any', 'count', 'sum']) | list -%}
            {%- if found | length == 0 -%}
                {{ exceptions.raise_compiler_error(var_name ~ ": ratio '" ~ metric.name ~ "': " ~ (part | tojson)
                    ~ " is not a custom metric of type any, count or sum") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}


{#- experiment_all_metric_names(): the built-in metrics' names, then the custom metrics'. Not SQL. -#}
{% macro experiment_all_metric_names() -%}
    {{ return(recsys_eval.experiment_metric_names()
        + (recsys_eval.experiment_custom_metric_definitions() | map(attribute='name') | list)) }}
{%- endmacro %}


{% macro experiment_custom_caps(metrics, relation, value_column) -%}
    {#- The caps of the capped custom metrics among `metrics`, one row per metric (metric, cap): a fixed
        value (cap_value), or the percentile (cap_percentile, linear interpolation) of `value_column`
        over the rows of `relation` whose `metric` is that metric; no rows when none is capped. -#}
    select
        cast(null as {{ dbt.type_string() }}) as metric,
        cast(null as {{ recsys_eval.type_double() }}) as cap

    from {{ relation }}
    where 1 = 0
    {%- for metric in metrics if metric.cap_percentile is not none or metric.cap_value is not none %}

    union all

    select
        {{ recsys_eval.string_literal(metric.name) }} as metric,
        {%- if metric.cap_value is not none %}
        max({{ recsys_eval.experiment_double_literal(metric.cap_value) }}) as cap
        {%- else %}
        cast({{ recsys_eval.percentile_cont(
            value_column, recsys_eval.experiment_double_literal(metric.cap_percentile)) }} as {{ recsys_eval.type_double() }}) as cap
        {%- endif %}

    from {{ relation }}
    where metric = {{ recsys_eval.string_literal(metric.name) }}
    {%- endfor %}
{%- endmacro %}
