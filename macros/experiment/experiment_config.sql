{#-
    experiment_config(): the validated experiment vars (reference §5, dbt_project.yml block
    `experiment analysis`) as a dict. Every experiment model calls it, so a bad value fails
    compilation with a message naming the var instead of producing wrong numbers:
      control_variant, candidate_variant   string or none ('' -> none)
      primary_metrics                      lower-cased list, each a built-in or custom metric's name
      max_latency_p95_ms, max_error_rate,
      max_empty_rate                       numbers >= 0 (0 = not configured)
      multiple_comparisons_method          fdr_bh | bonferroni | holm | none (case-insensitive)
      multiple_comparisons_alpha, ci_level,
      srm_alpha                            numbers in (0, 1)
      srm_min_sample                       integer >= 0
      srm_expected                         list of {variant, weight} sorted by variant; weights numbers
                                           >= 0 with a positive sum ({} -> []); the var is a mapping
                                           {variant: weight} or that list (the CLI's form)
      cuped_covariate_key                  string or none ('' -> none)
      srm_min_share_deviation              number in [0, 1) (the practical-size gate of SRM; 0 = off)
      guardrail_alpha                      number in (0, 1)
      guardrail_margins                    list of {metric, margin, relative} in the order error_rate,
                                           empty_rate, latency_mean (a subset; {} -> []); margins >= 0;
                                           the var maps a metric to a margin (absolute for the rates,
                                           relative for latency_mean) or to {margin, relative};
                                           latency_mean_relative is latency_mean, relative
    null for any scalar var means the reference's default. The reference silently replaces some
    invalid values (an unknown method reads as fdr_bh, alpha outside (0, 1) as 0.05); here they are
    errors, and the caller (the CLI) applies those normalisations before passing vars.
    Not SQL, so not dispatched.
-#}
{% macro experiment_config() -%}
    {%- set config = {} -%}

    {%- for name in ['control_variant', 'candidate_variant', 'cuped_covariate_key'] -%}
        {%- set value = recsys_eval.config_var('recsys_eval__experiment_' ~ name, none) -%}
        {%- if value is not none and (value is mapping or (value is iterable and value is not string)) -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_" ~ name ~ " must be a string, got: " ~ value) }}
        {%- endif -%}
        {%- do config.update({name: none if value is none or value | string == '' else value | string}) -%}
    {%- endfor -%}

    {%- set allowed_metrics = recsys_eval.experiment_all_metric_names() -%}
    {%- set primary = recsys_eval.config_var('recsys_eval__experiment_primary_metrics', []) -%}
    {%- if primary is none or primary == '' -%}
        {%- set primary = [] -%}
    {%- elif primary is string -%}
        {%- set primary = [primary] -%}
    {%- elif primary is mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_primary_metrics must be a list of metric names, got: " ~ primary) }}
    {%- endif -%}
    {%- set primary_metrics = [] -%}
    {%- for metric in primary -%}
        {%- set name = metric | string | trim | lower -%}
        {%- if name not in allowed_metrics -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_primary_metrics: unknown metric '" ~ metric
                ~ "' (allowed: " ~ allowed_metrics | join(', ') ~ ")") }}
        {%- endif -%}
        {%- do primary_metrics.append(name) -%}
    {%- endfor -%}
    {%- do config.update({'primary_metrics': primary_metrics}) -%}

    {%- for name in ['max_latency_p95_ms', 'max_error_rate', 'max_empty_rate'] -%}
        {%- set value = recsys_eval.experiment_number_var(name, 0) -%}
        {%- if value < 0 -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_" ~ name ~ " must be >= 0 (0 = not configured), got: " ~ value) }}
        {%- endif -%}
        {%- do config.update({name: value}) -%}
    {%- endfor -%}

    {%- set methods = ['fdr_bh', 'bonferroni', 'holm', 'none'] -%}
    {%- set method = recsys_eval.config_var('recsys_eval__experiment_multiple_comparisons_method', 'fdr_bh') -%}
    {%- set method = 'fdr_bh' if method is none else method | string | trim | lower -%}
    {%- if method not in methods -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_multiple_comparisons_method must be one of "
            ~ methods | join(', ') ~ ", got: '" ~ method ~ "'") }}
    {%- endif -%}
    {%- do config.update({'multiple_comparisons_method': method}) -%}

    {%- for name, default in [('multiple_comparisons_alpha', 0.05), ('ci_level', 0.95), ('srm_alpha', 0.001)] -%}
        {%- set value = recsys_eval.experiment_number_var(name, default) -%}
        {%- if value <= 0 or value >= 1 -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_" ~ name ~ " must be in (0, 1), got: " ~ value) }}
        {%- endif -%}
        {%- do config.update({name: value}) -%}
    {%- endfor -%}

    {%- set min_sample = recsys_eval.experiment_number_var('srm_min_sample', 100) -%}
    {%- if min_sample < 0 or min_sample != (min_sample | int) -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_srm_min_sample must be an integer >= 0, got: " ~ min_sample) }}
    {%- endif -%}
    {%- do config.update({'srm_min_sample': min_sample | int}) -%}

    {%- set expected = recsys_eval.config_var('recsys_eval__experiment_srm_expected', {}) -%}
    {%- if expected is none or expected == '' -%}
        {%- set expected = {} -%}
    {%- endif -%}
    {%- set pairs = [] -%}
    {%- if expected is mapping -%}
        {%- for key, raw in expected.items() -%}{%- do pairs.append([key, raw]) -%}{%- endfor -%}
    {%- elif expected is iterable and expected is not string -%}
        {#- the CLI's form: [{variant, weight}, ...] (a long variant name cannot be a YAML key) -#}
        {%- for entry in expected -%}
            {%- if entry is not mapping or 'variant' not in entry or 'weight' not in entry -%}
                {{ exceptions.raise_compiler_error(
                    "var recsys_eval__experiment_srm_expected: each list entry must be {variant, weight}, got: " ~ entry) }}
            {%- endif -%}
            {%- do pairs.append([entry['variant'], entry['weight']]) -%}
        {%- endfor -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_srm_expected must be a mapping {variant: weight}, got: " ~ expected) }}
    {%- endif -%}
    {%- set weights = [] -%}
    {%- set ns = namespace(total=0) -%}
    {%- for key, raw in pairs -%}
        {%- set variant = key | string -%}
        {%- if raw is boolean or raw is not number -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_srm_expected: the weight of variant '" ~ variant
                ~ "' must be a number, got: " ~ raw) }}
        {%- endif -%}
        {%- if raw < 0 -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_srm_expected: the weight of variant '" ~ variant
                ~ "' must be >= 0, got: " ~ raw) }}
        {%- endif -%}
        {%- if variant == '' -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_srm_expected: a variant name must not be empty") }}
        {%- endif -%}
        {%- set ns.total = ns.total + raw -%}
        {%- do weights.append({'variant': variant, 'weight': raw}) -%}
    {%- endfor -%}
    {%- set weights = weights | sort(attribute='variant') -%}
    {%- if weights | length > 0 and ns.total <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_srm_expected: the weights must have a positive sum, got: " ~ expected) }}
    {%- endif -%}
    {%- do config.update({'srm_expected': weights}) -%}

    {%- set share_deviation = recsys_eval.experiment_number_var('srm_min_share_deviation', 0.001) -%}
    {%- if share_deviation < 0 or share_deviation >= 1 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_srm_min_share_deviation must be in [0, 1), got: " ~ share_deviation) }}
    {%- endif -%}
    {%- do config.update({'srm_min_share_deviation': share_deviation}) -%}

    {%- set guardrail_alpha = recsys_eval.experiment_number_var('guardrail_alpha', 0.05) -%}
    {%- if guardrail_alpha <= 0 or guardrail_alpha >= 1 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_guardrail_alpha must be in (0, 1), got: " ~ guardrail_alpha) }}
    {%- endif -%}
    {%- do config.update({'guardrail_alpha': guardrail_alpha}) -%}

    {#- the tested guardrails and whether each margin is relative by default (today's types) -#}
    {%- set guardrail_metrics = ['error_rate', 'empty_rate', 'latency_mean'] -%}
    {%- set relative_by_default = {'error_rate': false, 'empty_rate': false, 'latency_mean': true} -%}
    {%- set margins = recsys_eval.config_var('recsys_eval__experiment_guardrail_margins', {}) -%}
    {%- if margins is none or margins == '' -%}
        {%- set margins = {} -%}
    {%- endif -%}
    {%- if margins is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_guardrail_margins must be a mapping {metric: margin}, got: " ~ margins) }}
    {%- endif -%}
    {%- set normalised = {} -%}
    {%- for key, raw in margins.items() -%}
        {%- set metric = key | string | trim | lower -%}
        {#- latency_mean_relative: the earlier name of latency_mean with a relative margin -#}
        {%- set legacy_relative = metric == 'latency_mean_relative' -%}
        {%- set metric = 'latency_mean' if legacy_relative else metric -%}
        {%- if metric not in guardrail_metrics -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_guardrail_margins: unknown metric '" ~ key
                ~ "' (allowed: " ~ guardrail_metrics | join(', ') ~ ")") }}
        {%- endif -%}
        {%- if raw is mapping -%}
            {%- set margin = raw.get('margin') -%}
            {%- set relative = raw.get('relative', relative_by_default[metric]) -%}
            {%- if relative is not boolean -%}
                {{ exceptions.raise_compiler_error(
                    "var recsys_eval__experiment_guardrail_margins: relative of '" ~ metric
                    ~ "' must be true or false, got: " ~ relative) }}
            {%- endif -%}
        {%- else -%}
            {%- set margin = raw -%}
            {%- set relative = legacy_relative or relative_by_default[metric] -%}
        {%- endif -%}
        {%- if margin is boolean or margin is not number or margin < 0 -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_guardrail_margins: the margin of '" ~ metric
                ~ "' must be a number >= 0, got: " ~ margin) }}
        {%- endif -%}
        {%- do normalised.update({metric: {'metric': metric, 'margin': margin, 'relative': relative}}) -%}
    {%- endfor -%}
    {%- set guardrail_margins = [] -%}
    {%- for metric in guardrail_metrics if metric in normalised -%}
        {%- do guardrail_margins.append(normalised[metric]) -%}
    {%- endfor -%}
    {%- do config.update({'guardrail_margins': guardrail_margins}) -%}

    {{ return(config) }}
{%- endmacro %}


{#-
    experiment_number_var(name, default): var recsys_eval__experiment_<name> as a number; null ->
    default; a boolean, a string or anything else that is not a number fails compilation.
-#}
{% macro experiment_number_var(name, default) -%}
    {%- set value = recsys_eval.config_var('recsys_eval__experiment_' ~ name, default) -%}
    {%- if value is none -%}
        {{ return(default) }}
    {%- endif -%}
    {%- if value is boolean or value is not number -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_" ~ name ~ " must be a number, got: '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- experiment_double_literal(value): a validated Jinja number as a SQL double literal. -#}
{% macro experiment_double_literal(value) -%}
    cast({{ recsys_eval.stats_double_literal(value) }} as {{ recsys_eval.type_double() }})
{%- endmacro %}

{% macro experiment_critical_value(experiment) -%}
    {#- One row: the family alpha, the interval level and its two-sided normal critical value z, as the
        significance and CUPED marts use them (one definition, not a copy per mart). -#}
    select
        {{ recsys_eval.experiment_double_literal(experiment.multiple_comparisons_alpha) }} as alpha,
        {{ recsys_eval.experiment_double_literal(experiment.ci_level) }} as ci_level,
        {{ recsys_eval.normal_quantile(
            recsys_eval.experiment_double_literal(1 - (1 - experiment.ci_level) / 2)
        ) }} as z_critical
{%- endmacro %}
