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
