{#-
    offline_metric_specs(metrics=none): the validated offline metric list (reference §4.3) as a list of
    dicts {position, name, family, k, kind}, in configured order. `metrics` defaults to
    var recsys_eval__offline_metrics: a list of {name, k}. Names are case-insensitive families,
    plain or spelled `<family>@k`; k must be an integer > 0. A repeated spec is kept (its results are
    repeated, as in the reference), so rows are keyed by position, not by name.
    Errors (compile time): `unknown metric: <name>` and `<family>@<k> requires k > 0`.
    Not SQL, so not dispatched.
-#}
{% macro offline_metric_specs(metrics=none) -%}
    {%- set per_case_families = ['precision', 'recall', 'map', 'ndcg', 'hitrate', 'mrr'] -%}
    {%- set dataset_families = ['coverage', 'novelty', 'diversity'] -%}
    {%- set configured = recsys_eval.config_var('recsys_eval__offline_metrics', []) if metrics is none else metrics -%}
    {%- if configured is none or configured == '' -%}
        {%- set configured = [] -%}
    {%- endif -%}
    {%- if configured is mapping or configured is string -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_metrics must be a list of {name, k}, got: " ~ configured) }}
    {%- endif -%}
    {%- set specs = [] -%}
    {%- for metric in configured -%}
        {%- if metric is not mapping or 'name' not in metric -%}
            {{ exceptions.raise_compiler_error(
                "recsys_eval__offline_metrics entries must be {name, k}, got: " ~ metric) }}
        {%- endif -%}
        {%- set name = metric['name'] | string | trim | lower -%}
        {%- set family = name[:-2] if name.endswith('@k') else name -%}
        {%- if family in per_case_families -%}
            {%- set kind = 'per_case' -%}
        {%- elif family in dataset_families -%}
            {%- set kind = 'dataset' -%}
        {%- else -%}
            {{ exceptions.raise_compiler_error("unknown metric: " ~ metric['name']) }}
        {%- endif -%}
        {%- set k = metric.get('k') -%}
        {%- if k is none or k is boolean or k is not number or k != (k | int) or (k | int) <= 0 -%}
            {{ exceptions.raise_compiler_error(family ~ "@" ~ k ~ " requires k > 0") }}
        {%- endif -%}
        {%- do specs.append({
            'position': loop.index,
            'name': family ~ '@' ~ (k | int),
            'family': family,
            'k': k | int,
            'kind': kind,
        }) -%}
    {%- endfor -%}
    {{ return(specs) }}
{%- endmacro %}


{#-
    offline_metric_specs_sql(specs): a complete `select` with one row per spec and the columns
    metric_position, metric_name, metric_family, k, metric_kind; no rows for an empty list.
    Portable: literals, casts and `union all` only.
-#}
{% macro offline_metric_specs_sql(specs) -%}
    {%- if specs | length == 0 -%}
    select
        cast(null as {{ dbt.type_int() }}) as metric_position,
        cast(null as {{ dbt.type_string() }}) as metric_name,
        cast(null as {{ dbt.type_string() }}) as metric_family,
        cast(null as {{ dbt.type_int() }}) as k,
        cast(null as {{ dbt.type_string() }}) as metric_kind
    from (select 1 as placeholder) as no_specs
    where 1 = 0
    {%- else -%}
    {%- for spec in specs %}
    select
        cast({{ spec.position }} as {{ dbt.type_int() }}) as metric_position,
        cast('{{ spec.name }}' as {{ dbt.type_string() }}) as metric_name,
        cast('{{ spec.family }}' as {{ dbt.type_string() }}) as metric_family,
        cast({{ spec.k }} as {{ dbt.type_int() }}) as k,
        cast('{{ spec.kind }}' as {{ dbt.type_string() }}) as metric_kind
    {%- if not loop.last %}
    union all
    {%- endif -%}
    {%- endfor -%}
    {%- endif -%}
{%- endmacro %}


{#- offline_metric_max_k(specs): the largest k of the specs (1 for an empty list). -#}
{% macro offline_metric_max_k(specs) -%}
    {%- set ks = [1] -%}
    {%- for spec in specs -%}{%- do ks.append(spec.k) -%}{%- endfor -%}
    {{ return(ks | max) }}
{%- endmacro %}
