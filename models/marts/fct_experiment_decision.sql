{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set decision = recsys_eval.experiment_decision_config(experiment) -%}
{%- set double = recsys_eval.type_double() -%}
{#- written columns: the reference's; read: those (reference, fct_experiment_significance) or every
    defined metric (playbook, the per-user tests of fct_experiment_metric_tests) -#}
{%- set reported_metrics = ['ctr', 'conversion_rate', 'revenue_per_request'] -%}
{%- set reported_tests = ['ctr', 'conversion_rate'] -%}
{%- if decision.policy == 'reference' -%}
{%- set known_metrics = reported_metrics -%}
{%- set tested_metrics = reported_tests -%}
{%- else -%}
{%- set known_metrics = recsys_eval.experiment_all_metric_names() -%}
{%- set tested_metrics = known_metrics -%}
{%- endif -%}
{#- custom metrics (experiment.metrics) take the place of their name in identifiers: custom_<n>; their
    names reach SQL only as quoted literals -#}
{%- set custom_metrics = recsys_eval.experiment_custom_metric_definitions() -%}
{%- set ident = {} -%}
{%- for name in recsys_eval.experiment_metric_names() + ['error_rate', 'empty_rate', 'latency_mean'] -%}
{%- do ident.update({name: name}) -%}
{%- endfor -%}
{%- for metric in custom_metrics -%}
{%- do ident.update({metric.name: 'custom_' ~ loop.index}) -%}
{%- endfor -%}
{%- set guardrails = [
    ('latency_p95_ms', 'pass_latency'),
    ('error_rate', 'pass_error_rate'),
    ('empty_rate', 'pass_empty_rate'),
] -%}
{%- set builtin_non_inferiority = ['error_rate', 'empty_rate', 'latency_mean'] -%}
{%- set non_inferiority = builtin_non_inferiority
    + (custom_metrics | selectattr('role', 'equalto', 'guardrail') | map(attribute='name') | list) -%}
{%- set margin_texts = {} -%}
{%- for entry in experiment.guardrail_margins -%}
{%- do margin_texts.update({entry.metric: ('+' ~ ('%g' | format(entry.margin * 100)) ~ '% relative') if entry.relative
        else ('+' ~ ('%g' | format(entry.margin)) ~ ' absolute')}) -%}
{%- endfor -%}
{%- for metric in custom_metrics if metric.role == 'guardrail' -%}
{%- do margin_texts.update({metric.name: ('-' if metric.higher_is_better else '+')
        ~ (('%g' | format(metric.margin * 100) ~ '% relative') if metric.relative
        else ('%g' | format(metric.margin) ~ ' absolute'))}) -%}
{%- endfor -%}
{%- set join_rates = ['assignment_join_rate', 'outcome_join_rate'] -%}
{%- set min_join_percent = '%g' | format(decision.min_join_rate * 100) -%}
{%- set double_literal = recsys_eval.experiment_double_literal -%}

{#- select lists, built here so each renders as one column per line -#}
{%- set not_shown_columns = [] -%}
{%- for guardrail in non_inferiority -%}
{%- do not_shown_columns.append(
        "max(case when guardrail_tests.guardrail = " ~ recsys_eval.string_literal(guardrail)
        ~ " and guardrail_tests.test_status = 'ok' and not coalesce(guardrail_tests.is_non_inferior, false)"
        ~ " then 1 else 0 end) = 1 as is_" ~ ident[guardrail] ~ "_not_shown") -%}
{#- the candidate's test of that guardrail, for its reason: both arms' values, p-value and alpha -#}
{%- for column, alias in [('control_value', 'control'), ('variant_value', 'candidate'), ('p_value', 'p_value'),
        ('alpha', 'alpha')] -%}
{%- do not_shown_columns.append(
        "max(case when guardrail_tests.guardrail = " ~ recsys_eval.string_literal(guardrail)
        ~ " then guardrail_tests." ~ column ~ " end) as " ~ ident[guardrail] ~ "_ni_" ~ alias) -%}
{%- endfor -%}
{%- endfor -%}
{%- set evidence_columns = [] -%}
{%- for metric in known_metrics -%}
{%- for side, test_column in [('control', 'control_value'), ('candidate', 'variant_value')] -%}
{%- set source = side ~ '_metrics.' ~ metric if metric in reported_metrics else ident[metric] ~ '_tests.' ~ test_column -%}
{%- do evidence_columns.append('cast(coalesce(' ~ source ~ ', 0) as ' ~ double ~ ') as ' ~ side ~ '_' ~ ident[metric]) -%}
{%- endfor -%}
{%- endfor -%}
{%- for metric in tested_metrics -%}
{%- for column in ['p_value', 'adjusted_p_value', 'relative_lift', 'relative_lift_ci_lower',
        'relative_lift_ci_upper', 'test_status'] -%}
{%- do evidence_columns.append(ident[metric] ~ '_tests.' ~ column ~ ' as ' ~ ident[metric] ~ '_' ~ column) -%}
{%- endfor -%}
{%- do evidence_columns.append(
        'coalesce(' ~ ident[metric] ~ '_tests.is_significant, false) as is_' ~ ident[metric] ~ '_significant') -%}
{%- endfor -%}
{%- for guardrail, pass_column in guardrails -%}
{%- do evidence_columns.append(
        'cast(coalesce(candidate_guardrails.' ~ guardrail ~ ', 0) as ' ~ double ~ ') as candidate_' ~ guardrail) -%}
{%- do evidence_columns.append(
        'cast(coalesce(candidate_guardrails.max_' ~ guardrail ~ ', 0) as ' ~ double ~ ') as max_' ~ guardrail) -%}
{%- do evidence_columns.append(
        'coalesce(candidate_guardrails.' ~ pass_column ~ ', true) as ' ~ pass_column) -%}
{%- endfor -%}
{%- for guardrail in non_inferiority -%}
{%- do evidence_columns.append('not_shown.is_' ~ ident[guardrail] ~ '_not_shown') -%}
{%- for alias in ['control', 'candidate', 'p_value', 'alpha'] -%}
{%- do evidence_columns.append('not_shown.' ~ ident[guardrail] ~ '_ni_' ~ alias) -%}
{%- endfor -%}
{%- endfor -%}
{%- set delta_columns = [] -%}
{%- for metric in known_metrics -%}
{#- delta = candidate - control; relative delta = delta / control, 0 when the control is 0 (§5.10) -#}
{%- set m = ident[metric] -%}
{%- do delta_columns.append('candidate_' ~ m ~ ' - control_' ~ m ~ ' as ' ~ m ~ '_delta') -%}
{%- do delta_columns.append(recsys_eval.safe_divide(
        'candidate_' ~ m ~ ' - control_' ~ m, 'control_' ~ m) ~ ' as ' ~ m ~ '_relative_delta') -%}
{%- endfor -%}
{%- set primary_columns = [] -%}
{%- set regressed = [] -%}
{%- set worse = [] -%}
{%- set better = [] -%}
{%- for metric in decision.primary_metrics -%}
{#- per decision metric, in the configured order: the reference's regression (delta < threshold) and the
        playbook's significantly worse / better beyond the threshold / untested; a name the marts do not
        know reads as 0 and is untested -#}
{%- set n = loop.index -%}
{%- set threshold = double_literal(decision.thresholds.get(metric, 0)) -%}
{%- set m = ident.get(metric, '') -%}
{%- set delta = m ~ '_delta' if metric in known_metrics else '0.0e0' -%}
{%- do primary_columns.append(delta ~ ' < ' ~ threshold ~ ' as is_primary_' ~ n ~ '_regressed') -%}
{%- if metric in tested_metrics -%}
{%- set tested = m ~ '_p_value is not null and is_' ~ m ~ '_significant' -%}
{%- do primary_columns.append(m ~ '_p_value is null as is_primary_' ~ n ~ '_untested') -%}
{%- do primary_columns.append(tested ~ ' and ' ~ delta ~ ' < 0 as is_primary_' ~ n ~ '_worse') -%}
{%- do primary_columns.append(
            tested ~ ' and ' ~ delta ~ ' > 0 and (' ~ m ~ '_relative_delta >= ' ~ threshold
            ~ ' or ' ~ threshold ~ ' = 0) as is_primary_' ~ n ~ '_better') -%}
{%- else -%}
{%- do primary_columns.append('true as is_primary_' ~ n ~ '_untested') -%}
{%- do primary_columns.append('false as is_primary_' ~ n ~ '_worse') -%}
{%- do primary_columns.append('false as is_primary_' ~ n ~ '_better') -%}
{%- endif -%}
{%- do regressed.append('is_primary_' ~ n ~ '_regressed') -%}
{%- do worse.append('is_primary_' ~ n ~ '_worse') -%}
{%- do better.append('is_primary_' ~ n ~ '_better') -%}
{%- endfor -%}
{%- set all_pass = guardrails | map(attribute=1) | join(' and ') -%}
{%- set not_shown_flags = [] -%}
{%- for guardrail in non_inferiority -%}
{%- do not_shown_flags.append('is_' ~ ident[guardrail] ~ '_not_shown') -%}
{%- endfor %}

{#- each decision metric's evidence for its reasons: both arms, the relative lift with its interval,
    the p-values and the minimum effect -#}
{%- set num = recsys_eval.experiment_reason_number -%}
{%- set metric_numbers = {} -%}
{%- for metric in decision.primary_metrics if metric in known_metrics -%}
{%- set m = ident[metric] -%}
{%- set parts = [' (control ', num('control_' ~ m), ', candidate ', num('candidate_' ~ m),
        '; relative lift ', num(m ~ '_relative_delta', 'percent')] -%}
{%- if metric in tested_metrics -%}
{%- do parts.extend([' CI [', num(m ~ '_relative_lift_ci_lower', 'percent'), ', ',
        num(m ~ '_relative_lift_ci_upper', 'percent'), ']; p=', num(m ~ '_p_value', 'p'),
        ', adjusted p=', num(m ~ '_adjusted_p_value', 'p')]) -%}
{%- endif -%}
{%- do parts.append('; minimum relative lift ' ~ ('%g' | format(decision.thresholds.get(metric, 0) * 100)) ~ '%)') -%}
{%- do metric_numbers.update({metric: parts}) -%}
{%- endfor %}

{#- the reasons, most important first; each is null unless its rule decided -#}
{%- set reasons = [] -%}
{%- if decision.policy == 'reference' -%}
{%- do reasons.append(recsys_eval.experiment_reason("decision_rule = 'primary_regression'", ['primary metric regression'])) -%}
{%- do reasons.append(recsys_eval.experiment_reason("decision_rule = 'guardrail_regression'", ['guardrail regression'])) -%}
{%- do reasons.append(recsys_eval.experiment_reason("decision_rule = 'srm_detected'", ['srm detected'])) -%}
{%- else -%}
{%- for rate in join_rates -%}
{%- do reasons.append(recsys_eval.experiment_reason(
            "decision_rule = 'low_join_rate' and " ~ rate ~ " < min_join_rate",
            ['join rate below ' ~ min_join_percent ~ '%: ' ~ rate ~ ' ', {'sql': recsys_eval.format_fixed(rate, 4)}])) -%}
{%- endfor -%}
{%- do reasons.append(recsys_eval.experiment_reason(
        "decision_rule = 'srm_detected'",
        ['srm detected (p=', num('srm_p_value', 'p'), ' < alpha ', num('srm_alpha', 'p'), ')'])) -%}
{%- for guardrail, pass_column in guardrails -%}
{%- do reasons.append(recsys_eval.experiment_reason(
            "decision_rule = 'guardrail_breached' and not " ~ pass_column,
            ['guardrail breached: ' ~ guardrail ~ ' (candidate ', num('candidate_' ~ guardrail),
                ' > max ', num('max_' ~ guardrail), ')'])) -%}
{%- endfor -%}
{%- for metric in decision.primary_metrics -%}
{%- do reasons.append(recsys_eval.experiment_reason(
            "decision_rule = 'primary_worse' and is_primary_" ~ loop.index ~ "_worse",
            ['primary metric significantly worse: ' ~ metric] + metric_numbers.get(metric, []))) -%}
{%- endfor -%}
{%- for guardrail in non_inferiority -%}
{%- do reasons.append(recsys_eval.experiment_reason(
            "decision_rule = 'non_inferiority_not_shown' and is_" ~ ident[guardrail] ~ "_not_shown",
            ['guardrail non-inferiority not shown: ' ~ guardrail ~ ' (control ', num(ident[guardrail] ~ '_ni_control'),
                ', candidate ', num(ident[guardrail] ~ '_ni_candidate'), '; margin ' ~ margin_texts.get(guardrail, 'n/a')
                ~ '; p=', num(ident[guardrail] ~ '_ni_p_value', 'p'), ' >= alpha ', num(ident[guardrail] ~ '_ni_alpha', 'p'),
                ')'])) -%}
{%- endfor -%}
{%- for metric in decision.primary_metrics -%}
{%- do reasons.append(recsys_eval.experiment_reason(
            "decision_rule in ('non_inferiority_not_shown', 'primary_better')",
            ['primary metric significantly better: ' ~ metric] + metric_numbers.get(metric, []))) -%}
{%- endfor -%}
{%- do reasons.append(recsys_eval.experiment_reason(
        "decision_rule = 'not_better'", ['primary metrics not significantly better beyond the minimum effect'])) -%}
{%- for metric in decision.primary_metrics -%}
{%- if metric in known_metrics -%}
{%- do reasons.append(recsys_eval.experiment_reason(
            "decision_rule = 'not_better' and is_primary_" ~ loop.index ~ "_untested",
            ['no valid test for ' ~ metric] + metric_numbers.get(metric, []))) -%}
{%- do reasons.append(recsys_eval.experiment_reason(
            "decision_rule = 'not_better' and not is_primary_" ~ loop.index ~ "_untested",
            ['not significantly better beyond the minimum effect: ' ~ metric] + metric_numbers.get(metric, []))) -%}
{%- else -%}
{%- do reasons.append(recsys_eval.experiment_reason(
            "decision_rule = 'not_better' and is_primary_" ~ loop.index ~ "_untested", ['no valid test for ' ~ metric])) -%}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- set reason_columns = [] -%}
{%- set reason_texts = [] -%}
{%- set json_items = [] -%}
{%- for reason in reasons -%}
{%- do reason_columns.append(reason.text ~ ' as reason_' ~ loop.index) -%}
{%- do reason_columns.append(reason.json ~ ' as reason_json_' ~ loop.index) -%}
{%- do reason_texts.append('reason_' ~ loop.index) -%}
{%- do json_items.append('coalesce(' ~ dbt.concat(["', '", 'reason_json_' ~ loop.index]) ~ ", '')") -%}
{%- endfor -%}

with

arms as (

    select * from {{ ref('int_recsys_eval__experiment_arms') }}

),

variant_metrics as (

    select * from {{ ref('fct_experiment_variant_metrics') }}
    where scope = 'global'

),

significance as (  -- noqa: ST03

    select * from {{ ref('fct_experiment_significance') }}
    where scope = 'global'

),

metric_tests as (  -- noqa: ST03

    -- the per-user tests the playbook decides on
    select * from {{ ref('fct_experiment_metric_tests') }}
    where scope = 'global'

),

guardrails as (

    select * from {{ ref('fct_experiment_guardrails') }}

),

guardrail_tests as (

    select * from {{ ref('fct_experiment_guardrail_tests') }}

),

srm as (

    select * from {{ ref('fct_experiment_srm') }}
    where scope = 'global'

),

data_quality as (

    select * from {{ ref('fct_data_quality') }}
    where scope = 'global'

),

chosen as (

    -- the control and the candidate of int_recsys_eval__experiment_arms (reference §5.5); one row,
    -- '' when there is none (no assigned exposures)
    select
        coalesce(max(case when is_control then variant end), '') as control_variant,
        coalesce(max(case when is_candidate then variant end), '') as candidate_variant

    from arms

),

srm_global as (

    -- the global SRM test, repeated on each variant's row; one row, nulls when SRM has no rows
    select
        max(p_value) as srm_p_value,
        max(alpha) as srm_alpha,
        max(case when is_detected then 1 else 0 end) = 1 as is_srm_detected,
        count(*) > 0 as has_srm

    from srm

),

not_shown as (

    -- the candidate's guardrail non-inferiority tests that ran and did not show non-inferiority
    select
        {{ not_shown_columns | join(',\n        ') }}

    from chosen
    left join guardrail_tests
        on chosen.candidate_variant = guardrail_tests.variant

),

evidence as (

    -- one row: the global values of control and candidate (0 for a variant without exposures), the
    -- candidate's tests, guardrails and the run's join rates and SRM test
    select
        chosen.control_variant,
        chosen.candidate_variant,
        {{ evidence_columns | join(',\n        ') }},
        data_quality.assignment_join_rate,
        data_quality.outcome_join_rate,
        {{ recsys_eval.experiment_double_literal(decision.min_join_rate) }} as min_join_rate,
        srm_global.srm_p_value,
        srm_global.srm_alpha,
        {{ 'srm_global.has_srm' if decision.srm_enabled else 'false' }} as is_srm_reported,
        {{ 'coalesce(srm_global.is_srm_detected, false)' if decision.srm_enabled else 'false' }} as is_srm_detected

    from chosen
    cross join srm_global
    cross join not_shown
    cross join data_quality
    left join variant_metrics as control_metrics
        on chosen.control_variant = control_metrics.variant
    left join variant_metrics as candidate_metrics
        on chosen.candidate_variant = candidate_metrics.variant
    {%- for metric in tested_metrics %}
    left join {{ 'significance' if decision.policy == 'reference' else 'metric_tests' }} as {{ ident[metric] }}_tests
        on
            chosen.candidate_variant = {{ ident[metric] }}_tests.variant
            and {{ ident[metric] }}_tests.metric = {{ recsys_eval.string_literal(metric) }}
    {%- endfor %}
    left join guardrails as candidate_guardrails
        on chosen.candidate_variant = candidate_guardrails.variant

),

deltas as (

    -- delta = candidate - control; relative delta = delta / control, 0 when the control is 0 (§5.10)
    select
        *,
        {{ delta_columns | join(',\n        ') }}

    from evidence

),

primary_outcomes as (

    -- per decision metric (in the configured order): the reference's regression (delta < threshold),
    -- and the playbook's significantly worse / better beyond the threshold / untested
    select
        *,
        {{ primary_columns | join(',\n        ') }}

    from deltas

),

rules as (

    -- which rule decides, evaluated in order (the model's description and README "Did B win?")
    select
        *,
        {%- if decision.policy == 'reference' %}
        case
            when {{ regressed | join(' or ') }} then 'primary_regression'
            {%- if decision.guardrail_gate %}
            when not ({{ all_pass }}) then 'guardrail_regression'
            {%- endif %}
            {%- if decision.srm_gate %}
            when is_srm_detected then 'srm_detected'
            {%- endif %}
            else 'ship'
        end as decision_rule
        {%- else %}
        case
            when assignment_join_rate < min_join_rate or outcome_join_rate < min_join_rate then 'low_join_rate'
            when is_srm_detected then 'srm_detected'
            when not ({{ all_pass }}) then 'guardrail_breached'
            when {{ worse | join(' or ') }} then 'primary_worse'
            when ({{ better | join(' and ') }}) and ({{ not_shown_flags | join(' or ') }})
                then 'non_inferiority_not_shown'
            when {{ better | join(' and ') }} then 'primary_better'
            else 'not_better'
        end as decision_rule
        {%- endif %}

    from primary_outcomes

),

reasons as (

    -- every reason the rules can give, most important first: null unless its rule decided, as text
    -- and as a JSON string
    select
        *,
        {{ reason_columns | join(',\n        ') }}  -- noqa: LT05

    from rules

),

verdicts as (

    select
        *,
        case
            when decision_rule in ('ship', 'primary_better') then 'ship'
            when decision_rule = 'primary_regression' then 'fail'
            when decision_rule in ('guardrail_breached', 'primary_worse') then 'rollback'
            else 'hold'
        end as verdict,
        coalesce({{ reason_texts | join(', ') }}, '') as reason,  -- noqa: LT05
        -- a JSON list: each reason as `, "<reason>"` (or nothing), the first ', ' cut off
        {{ dbt.concat(["'['", 'substr(' ~ dbt.concat(json_items) ~ ', 3)', "']'"]) }} as reasons_json  -- noqa: LT05

    from reasons

),

final as (

    select
        ----------  the verdict
        {{ recsys_eval.string_literal(decision.policy) }} as policy,  -- noqa: RF04
        verdict,
        case when verdict = 'rollback' then 'fail' else verdict end as decision,  -- noqa: RF04
        decision_rule,
        reason,
        reasons_json,

        ----------  what was compared
        control_variant,
        candidate_variant,

        ----------  primary metrics: global values, deltas and the candidate's tests
        {%- for metric in reported_metrics %}
        {{ 'true' if metric in decision.primary_metrics else 'false' }} as is_{{ metric }}_primary,
        control_{{ metric }},
        candidate_{{ metric }},
        {{ metric }}_delta,
        {{ metric }}_relative_delta,
        {{ recsys_eval.experiment_double_literal(decision.thresholds.get(metric, 0)) }} as {{ metric }}_threshold,
        {%- endfor %}
        {#- the other defined metrics' deltas: 0 under the reference policy, which does not know them #}
        {%- for metric in recsys_eval.experiment_metric_names() if metric not in reported_metrics %}
        cast({{ metric ~ '_delta' if metric in known_metrics else '0' }} as {{ double }}) as {{ metric }}_delta,
        cast({{ metric ~ '_relative_delta' if metric in known_metrics else '0' }} as {{ double }})
            as {{ metric }}_relative_delta,
        {%- endfor %}
        {%- for metric in reported_tests %}
        {{ metric }}_p_value,
        {{ metric }}_adjusted_p_value,
        is_{{ metric }}_significant,
        {{ metric }}_relative_lift,
        {{ metric }}_relative_lift_ci_lower,
        {{ metric }}_relative_lift_ci_upper,
        {{ metric }}_test_status,
        {%- endfor %}

        ----------  the candidate's guardrails (caps: 0 = not configured) and non-inferiority tests
        {%- for guardrail, pass_column in guardrails %}
        candidate_{{ guardrail }},
        max_{{ guardrail }},
        {{ pass_column }},
        {%- endfor %}
        {%- for guardrail in builtin_non_inferiority %}
        is_{{ guardrail }}_not_shown,
        {%- endfor %}

        ----------  the gates: join rates and the global SRM test
        {%- for rate in join_rates %}
        {{ rate }},
        {%- endfor %}
        min_join_rate,
        is_srm_reported,
        is_srm_detected,
        srm_p_value,
        srm_alpha,
        {{ 'true' if decision.guardrail_gate else 'false' }} as is_guardrail_gate,
        {{ 'true' if decision.srm_gate else 'false' }} as is_srm_gate

    from verdicts

)

select * from final
