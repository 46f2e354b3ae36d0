{#-
    student_t_cdf(t, df, max_df=200): the CDF of Student's t distribution for an integer df in
    [1, max_df] (SciPy t.cdf). Closed form (Abramowitz & Stegun 26.7.3-4), no iteration; with
    c = df / (df + t^2) (= cos^2 theta), s = t / sqrt(df + t^2) (= sin theta), F = 0.5 + A / 2:
      even df:  A = s * sum_{j=0}^{(df-2)/2} e_j c^j,   e_0 = 1, e_j = e_{j-1} (2j - 1) / (2j)
      odd df:   A = (2/pi) * (atan(t / sqrt(df)) + s sqrt(c) * sum_{j=0}^{(df-3)/2} d_j c^j),
                d_0 = 1, d_j = d_{j-1} (2j) / (2j + 1)
    The sums are unrolled at compile time up to max_df (coefficients are compile-time doubles) and
    `case when df >= ...` switches terms off at run time, so df can be a column. Absolute error about
    1e-15 (the lower tail is 0.5 + A/2, so it is accurate in absolute, not relative, terms).
    df null, non-integer, < 1 or > max_df -> null. `t` and `df` are repeated: pass columns.
-#}
{% macro student_t_cdf(t, df, max_df=200) -%}
    {{ return(adapter.dispatch('student_t_cdf', 'recsys_eval')(t, df, max_df)) }}
{%- endmacro %}

{% macro default__student_t_cdf(t, df, max_df=200) -%}
    {%- if max_df < 1 or max_df > 1000 -%}
        {{ exceptions.raise_compiler_error("recsys_eval.student_t_cdf: max_df must be in [1, 1000], got " ~ max_df) }}
    {%- endif -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set v = 'cast((' ~ t ~ ') as ' ~ double ~ ')' -%}
    {%- set n = 'cast((' ~ df ~ ') as ' ~ double ~ ')' -%}
    {%- set c = '(' ~ n ~ ' / (' ~ n ~ ' + ' ~ v ~ ' * ' ~ v ~ '))' -%}
    {%- set s = '(' ~ v ~ ' / sqrt(' ~ n ~ ' + ' ~ v ~ ' * ' ~ v ~ '))' -%}
    {%- set odd = '(' ~ n ~ ' - 2.0e0 * floor(' ~ n ~ ' / 2.0e0) = 1.0e0)' -%}
    {%- set ns = namespace(even=1.0, odd=1.0) -%}
    case
        when {{ v }} is null or {{ n }} is null then cast(null as {{ double }})
        when {{ n }} < 1.0e0 or {{ n }} > {{ max_df }}.0e0 or {{ n }} <> floor({{ n }}) then cast(null as {{ double }})
        when {{ odd }} then 5.0e-1 + (
            atan({{ v }} / sqrt({{ n }}))
            + {{ s }} * sqrt({{ c }}) * (
                1.0e0
            {%- for j in range(1, (max_df - 3) // 2 + 1) %}
                {%- set ns.odd = ns.odd * (2 * j) / (2 * j + 1) %}
                + (case when {{ n }} >= {{ 2 * j + 3 }}.0e0 then {{ recsys_eval.stats_double_literal(ns.odd) }} * power({{ c }}, {{ j }}) else 0.0e0 end)
            {%- endfor %}
            ) * (case when {{ n }} >= 3.0e0 then 1.0e0 else 0.0e0 end)
        ) / 3.14159265358979323846e0
        else 5.0e-1 + 5.0e-1 * {{ s }} * (
            1.0e0
        {%- for j in range(1, (max_df - 2) // 2 + 1) %}
            {%- set ns.even = ns.even * (2 * j - 1) / (2 * j) %}
            + (case when {{ n }} >= {{ 2 * j + 2 }}.0e0 then {{ recsys_eval.stats_double_literal(ns.even) }} * power({{ c }}, {{ j }}) else 0.0e0 end)
        {%- endfor %}
        )
    end
{%- endmacro %}
