{#-
    experiment_decision_config(experiment): the validated decision vars (fct_experiment_decision) as a
    dict; `experiment` is recsys_eval.experiment_config(). A bad value fails compilation naming the var:
      policy              playbook | reference (case-insensitive, trimmed)
      guardrail_gate      boolean (reference policy: a candidate guardrail breach holds)
      srm_gate            boolean (reference policy: a detected global SRM holds)
      srm_enabled         boolean (false: the decision ignores the SRM test, as the CLI with srm.enabled off)
      primary_metrics     the decision's metrics: var recsys_eval__experiment_decision_primary_metrics
                          (lower-cased; any name, one that is not ctr, conversion_rate or
                          revenue_per_request reads as 0 on both sides, reference §5.10), else the
                          primary metrics, else [ctr]
      thresholds          {metric: number} from a mapping or a list of {metric, threshold}; keys are
                          matched exactly (the reference: a key must be lower-case to match)
      min_join_rate       var recsys_eval__min_join_rate (playbook: a lower join rate holds)
    Not SQL, so not dispatched.
-#}
{% macro experiment_decision_config(experiment) -%}
    {%- set config = {} -%}

    {%- set policy = recsys_eval.config_var('recsys_eval__experiment_decision_policy', 'playbook') -%}
    {%- set policy = 'playbook' if policy is none else policy | string | trim | lower -%}
    {%- if policy not in ['playbook', 'reference'] -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_decision_policy must be playbook or reference, got: '" ~ policy ~ "'") }}
    {%- endif -%}
    {%- do config.update({'policy': policy}) -%}

    {%- for name, default in [('decision_guardrail_gate', false), ('decision_srm_gate', false), ('srm_enabled', true)] -%}
        {%- set value = recsys_eval.config_var('recsys_eval__experiment_' ~ name, default) -%}
        {%- set value = default if value is none else value -%}
        {%- if value is not boolean -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_" ~ name ~ " must be true or false, got: '" ~ value ~ "'") }}
        {%- endif -%}
        {%- do config.update({name | replace('decision_', ''): value}) -%}
    {%- endfor -%}

    {%- set metrics = recsys_eval.config_var('recsys_eval__experiment_decision_primary_metrics', none) -%}
    {%- if metrics is none or metrics == '' or metrics == [] -%}
        {%- set metrics = experiment.primary_metrics if experiment.primary_metrics | length > 0 else ['ctr'] -%}
    {%- elif metrics is string -%}
        {%- set metrics = [metrics] -%}
    {%- elif metrics is mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_decision_primary_metrics must be a list of metric names, got: " ~ metrics) }}
    {%- endif -%}
    {%- set primary_metrics = [] -%}
    {%- for metric in metrics -%}
        {%- if metric is mapping or (metric is iterable and metric is not string) or metric is none -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_decision_primary_metrics: each entry must be a string, got: " ~ metric) }}
        {%- endif -%}
        {%- do primary_metrics.append(metric | string | lower) -%}
    {%- endfor -%}
    {%- do config.update({'primary_metrics': primary_metrics}) -%}

    {%- set raw = recsys_eval.config_var('recsys_eval__experiment_decision_primary_thresholds', {}) -%}
    {%- set raw = {} if raw is none or raw == '' else raw -%}
    {%- set pairs = [] -%}
    {%- if raw is mapping -%}
        {%- for key, value in raw.items() -%}{%- do pairs.append([key, value]) -%}{%- endfor -%}
    {%- elif raw is iterable and raw is not string -%}
        {#- the CLI's form: [{metric, threshold}, ...] -#}
        {%- for entry in raw -%}
            {%- if entry is not mapping or 'metric' not in entry or 'threshold' not in entry -%}
                {{ exceptions.raise_compiler_error(
                    "var recsys_eval__experiment_decision_primary_thresholds: each list entry must be {metric, threshold}, got: " ~ entry) }}
            {%- endif -%}
            {%- do pairs.append([entry['metric'], entry['threshold']]) -%}
        {%- endfor -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_decision_primary_thresholds must be a mapping {metric: threshold}, got: " ~ raw) }}
    {%- endif -%}
    {%- set thresholds = {} -%}
    {%- for key, value in pairs -%}
        {%- if value is boolean or value is not number -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_decision_primary_thresholds: the threshold of '" ~ key
                ~ "' must be a number, got: " ~ value) }}
        {%- endif -%}
        {%- do thresholds.update({key | string: value}) -%}
    {%- endfor -%}
    {%- do config.update({'thresholds': thresholds}) -%}

    {%- set min_join_rate = recsys_eval.config_var('recsys_eval__min_join_rate', 0.95) -%}
    {%- set min_join_rate = 0.95 if min_join_rate is none else min_join_rate -%}
    {%- if min_join_rate is boolean or min_join_rate is not number or min_join_rate < 0 or min_join_rate > 1 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__min_join_rate must be a number in [0, 1], got: '" ~ min_join_rate ~ "'") }}
    {%- endif -%}
    {%- do config.update({'min_join_rate': min_join_rate}) -%}

    {{ return(config) }}
{%- endmacro %}


{#-
    experiment_reason(condition, parts): one reason of the decision, for fct_experiment_decision.
    `parts` is a list of text (a Jinja string, quoted here) and SQL expressions ({'sql': expr} of
    type string). Returns {'text': SQL of the reason or null, 'json': SQL of the reason as a JSON
    string or null}, both null unless `condition` holds. The text parts are JSON-escaped at compile
    time (tojson, as Python's json.dumps); the SQL parts must need no escaping (formatted numbers).
    Not SQL, so not dispatched.
-#}
{% macro experiment_reason(condition, parts) -%}
    {%- set text_parts = [] -%}
    {%- set json_parts = [] -%}
    {%- for part in parts -%}
        {%- if part is mapping -%}
            {%- do text_parts.append(part.sql) -%}
            {%- do json_parts.append(part.sql) -%}
        {%- else -%}
            {%- set encoded = tojson(part | string) -%}
            {%- do text_parts.append(recsys_eval.string_literal(part)) -%}
            {%- do json_parts.append(recsys_eval.string_literal(encoded[1:-1])) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do json_parts.insert(0, "'\"'") -%}
    {%- do json_parts.append("'\"'") -%}
    {%- set text = text_parts[0] if text_parts | length == 1 else dbt.concat(text_parts) -%}
    {{ return({
        'text': 'case when ' ~ condition ~ ' then ' ~ text ~ ' end',
        'json': 'case when ' ~ condition ~ ' then ' ~ dbt.concat(json_parts) ~ ' end',
    }) }}
{%- endmacro %}


{#-
    experiment_reason_number(expression, kind='value'): a number of a decision reason as an
    experiment_reason part ({'sql': text}): 'value' with 4 significant digits, 'p' (a p-value or an
    alpha) with 3, 'percent' (a relative lift) times 100 with 2 decimals and '%'; 'n/a' when null.
    Not SQL itself (it calls the dispatched format macros), so not dispatched.
-#}
{% macro experiment_reason_number(expression, kind='value') -%}
    {%- if kind == 'percent' -%}
        {%- set text = dbt.concat([recsys_eval.format_fixed('(' ~ expression ~ ') * 100.0e0', 2), "'%'"]) -%}
    {%- else -%}
        {%- set text = recsys_eval.format_general(expression, 3 if kind == 'p' else 4) -%}
    {%- endif -%}
    {{ return({'sql': 'coalesce(' ~ text ~ ", 'n/a')"}) }}
{%- endmacro %}


{#-
    format_fixed(expression, digits): a double as text with `digits` decimals, as Python's
    f"{x:.<digits>f}" (correctly rounded on DuckDB; Java's formatter on Spark rounds a decimal tie
    half up, so a value exactly halfway between two outputs can print one unit higher there).
-#}
{% macro format_fixed(expression, digits) -%}
    {{ return(adapter.dispatch('format_fixed', 'recsys_eval')(expression, digits)) }}
{%- endmacro %}

{% macro default__format_fixed(expression, digits) -%}
    printf('%.{{ digits | int }}f', {{ expression }})
{%- endmacro %}

{#- Java formats a null argument as 'null' cut to the precision ('nu'): null stays null here. -#}
{% macro spark__format_fixed(expression, digits) -%}
    case when ({{ expression }}) is not null then format_string('%.{{ digits | int }}f', {{ expression }}) end
{%- endmacro %}


{#-
    format_general(expression, digits): a double as text with `digits` significant digits, as
    Python's f"{x:.<digits>g}" (trailing zeros dropped, exponent of at least two digits). Spark:
    Java's %g keeps trailing zeros and writes 0 as 0.00, so they are stripped with a regex.
-#}
{% macro format_general(expression, digits) -%}
    {{ return(adapter.dispatch('format_general', 'recsys_eval')(expression, digits)) }}
{%- endmacro %}

{% macro default__format_general(expression, digits) -%}
    printf('%.{{ digits | int }}g', {{ expression }})
{%- endmacro %}

{% macro spark__format_general(expression, digits) -%}
    regexp_replace(
        regexp_replace(
            case when ({{ expression }}) is not null then format_string('%.{{ digits | int }}g', {{ expression }}) end,
            '([.][0-9]*?)0+(e|$)', '$1$2'
        ),
        '[.](e|$)',
        '$1'
    )
{%- endmacro %}
