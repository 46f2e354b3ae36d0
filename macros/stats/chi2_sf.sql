{#-
    chi2_sf(x, df, max_df=100): the chi-square survival function P(X > x) for an integer df in
    [1, max_df], i.e. the regularized upper incomplete gamma Q(df/2, x/2) (reference §5.9, SciPy
    chi2.sf). Closed form, no iteration; with y = x/2:
      even df = 2m:     Q = exp(-y) * sum_{k=0}^{m-1} y^k / k!
      odd df = 2m + 1:  Q = erfc(sqrt(y)) + exp(-y) * sum_{k=1}^{m} y^(k-1/2) / Gamma(k + 1/2)
    Each term is exp(k ln y - y - ln k!) (no overflow for large x or df), and the sum is unrolled
    at compile time up to max_df; `case when df > 2k` switches the terms off at run time, so df can
    be a column. x <= 0 -> 1; df null, non-integer, < 1 or > max_df -> null. max_df is capped at
    300 (the factorials are compile-time doubles). Absolute error about 1e-15.
    `x` and `df` are repeated many times in the result: pass columns.
-#}
{% macro chi2_sf(x, df, max_df=100) -%}
    {{ return(adapter.dispatch('chi2_sf', 'recsys_eval')(x, df, max_df)) }}
{%- endmacro %}

{% macro default__chi2_sf(x, df, max_df=100) -%}
    {%- if max_df < 1 or max_df > 300 -%}
        {{ exceptions.raise_compiler_error("recsys_eval.chi2_sf: max_df must be in [1, 300], got " ~ max_df) }}
    {%- endif -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set v = 'cast((' ~ x ~ ') as ' ~ double ~ ')' -%}
    {%- set n = 'cast((' ~ df ~ ') as ' ~ double ~ ')' -%}
    {%- set y = '(' ~ v ~ ' / 2.0e0)' -%}
    {%- set log_y = 'ln(' ~ y ~ ')' -%}
    {%- set odd = '(' ~ n ~ ' - 2.0e0 * floor(' ~ n ~ ' / 2.0e0) = 1.0e0)' -%}
    {%- set ns = namespace(factorial=1.0, half_gamma=1.7724538509055160273) -%}
    case
        when {{ v }} is null or {{ n }} is null then cast(null as {{ double }})
        when {{ n }} < 1.0e0 or {{ n }} > {{ max_df }}.0e0 or {{ n }} <> floor({{ n }}) then cast(null as {{ double }})
        when {{ v }} <= 0.0e0 then 1.0e0
        else
            (case when {{ odd }} then {{ recsys_eval.erfc('sqrt(' ~ y ~ ')') }} else 0.0e0 end)
            + (case when {{ odd }} then 0.0e0 else exp(-{{ y }}) end)
        {%- for k in range(1, (max_df - 1) // 2 + 1) %}
            {%- set ns.factorial = ns.factorial * k %}
            {%- set ns.half_gamma = ns.half_gamma * (k - 0.5) %}
            + (case
                when {{ n }} <= {{ 2 * k }}.0e0 then 0.0e0
                when {{ odd }} then exp({{ k - 0.5 }}e0 * {{ log_y }} - {{ y }} - ln({{ recsys_eval.stats_double_literal(ns.half_gamma) }}))
                else exp({{ k }}.0e0 * {{ log_y }} - {{ y }} - ln({{ recsys_eval.stats_double_literal(ns.factorial) }}))
            end)
        {%- endfor %}
    end
{%- endmacro %}
