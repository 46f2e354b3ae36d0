{#-
    exact_sum(expression, over=none): an aggregate (or, with `over`, a window aggregate over that
    window specification): the sum of a double expression that does not depend on the order in
    which the rows are added, so not on the engine's threads, partitions and their scheduling (a
    plain sum(double) adds per-thread partial sums in whatever order the threads finish, and double
    addition is not associative: the last bits of a report changed from run to run).

    Each finite term x is split exactly into three integers: its integer part i = trunc(x), then
    the fraction's next 52 bits m = trunc((x - i) * 2^52) and the 52 after them
    l = round(((x - i) * 2^52 - m) * 2^52), so x = i + m 2^-52 + l 2^-104 exactly when |x| >= 2^-52,
    within 2^-105 (about 2.5e-32) below. Each part is summed as an integer (128-bit accumulators),
    and integer addition is associative: the three sums are the same for any row order, and so is
    the result, sum(i) + sum(m) 2^-52 + sum(l) 2^-104 rounded to a double. It is also at least as
    accurate as a plain sum (within a few ulps of the exact sum of the doubles, where a plain sum of
    n terms may be off by up to n ulps).

    Null rows are skipped like sum(); no non-null row gives null. Any infinite or NaN term makes the
    result the plain sum of the non-finite terms (+inf, -inf or NaN, as IEEE addition of the whole
    group gives, order-independent too). A finite term of magnitude >= 2^127 (about 1.7e38), or
    integer parts adding up beyond it, raise an overflow error rather than lose digits silently.

    duckdb: HUGEINT / BIGINT parts (DuckDB sums a BIGINT into a HUGEINT). default (Spark, ...):
    DECIMAL(38, 0) sums, with x rounded half-up to its integer part by the cast (the rest is still
    exact, |x - i| <= 1/2) and the 52-bit parts cast to BIGINT (truncating); integer sums up to 1e38.
    The literals 4.503599627370496e15 = 2^52, 2.220446049250313e-16 = 2^-52 and
    4.930380657631324e-32 = 2^-104 are exact doubles.
-#}
{% macro exact_sum(expression, over=none) -%}
    {{ return(adapter.dispatch('exact_sum', 'recsys_eval')(expression, over)) }}
{%- endmacro %}

{% macro default__exact_sum(expression, over=none) -%}
    {%- set window = ' over (' ~ over ~ ')' if over is not none else '' -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set x = 'cast(' ~ expression ~ ' as ' ~ double ~ ')' -%}
    {#- NaN compares greater than infinity on Spark and DuckDB: only finite terms pass -#}
    {%- set finite = 'case when abs(' ~ x ~ ') < cast(\'Infinity\' as ' ~ double ~ ') then ' ~ x ~ ' end' -%}
    {%- set whole = 'cast(' ~ finite ~ ' as decimal(38, 0))' -%}
    {%- set high = '((' ~ finite ~ ' - cast(' ~ whole ~ ' as ' ~ double ~ ')) * 4.503599627370496e15)' -%}
    {%- set middle = 'cast(' ~ high ~ ' as bigint)' -%}
    {%- set low = 'cast((' ~ high ~ ' - cast(' ~ middle ~ ' as ' ~ double ~ ')) * 4.503599627370496e15 as bigint)' -%}
    coalesce(
        sum(case when not abs({{ x }}) < cast('Infinity' as {{ double }}) then {{ x }} end){{ window }},
        cast(sum({{ whole }}){{ window }} as {{ double }})
        + cast(sum(cast({{ middle }} as decimal(38, 0))){{ window }} as {{ double }}) * 2.220446049250313e-16
        + cast(sum(cast({{ low }} as decimal(38, 0))){{ window }} as {{ double }}) * 4.930380657631324e-32
    )
{%- endmacro %}

{% macro duckdb__exact_sum(expression, over=none) -%}
    {%- set window = ' over (' ~ over ~ ')' if over is not none else '' -%}
    {%- set x = 'cast(' ~ expression ~ ' as double)' -%}
    {%- set finite = 'case when isfinite(' ~ x ~ ') then ' ~ x ~ ' end' -%}
    {%- set high = '((' ~ finite ~ ' - trunc(' ~ finite ~ ')) * 4.503599627370496e15)' -%}
    coalesce(
        sum(case when not isfinite({{ x }}) then {{ x }} end){{ window }},
        cast(sum(cast(trunc({{ finite }}) as hugeint)){{ window }} as double)
        + cast(sum(cast(trunc({{ high }}) as bigint)){{ window }} as double) * 2.220446049250313e-16
        + cast(sum(cast(({{ high }} - trunc({{ high }})) * 4.503599627370496e15 as bigint)){{ window }} as double)
        * 4.930380657631324e-32
    )
{%- endmacro %}


{#-
    exact_avg(expression, over=none): the mean of the non-null values of a double expression,
    exact_sum / count: order-independent like exact_sum; null when no row has a value.
-#}
{% macro exact_avg(expression, over=none) -%}
    {%- set window = ' over (' ~ over ~ ')' if over is not none else '' -%}
    ({{ recsys_eval.exact_sum(expression, over) }})
    / nullif(count({{ expression }}){{ window }}, 0)
{%- endmacro %}


{#-
    exact_var_pop(expression, center=none): the population variance (divide by n) of the non-null
    values of a double expression from order-independent sums: with c = center (0 when none) and
    d = x - c, (exact_sum(d^2) - exact_sum(d)^2 / n) / n, clamped at 0 against rounding; null when
    no row has a value. The one-pass formula loses digits when the variance is tiny against the
    squared distance of the mean from c: pass a center near the group mean (e.g. the group mean
    from a first pass) for values far from 0; the result is the same variance for any c.
-#}
{% macro exact_var_pop(expression, center=none) -%}
    {%- set deviation = '(' ~ expression ~ ')' if center is none else '((' ~ expression ~ ') - (' ~ center ~ '))' -%}
    case
        when count({{ expression }}) > 0 then greatest(
            (
                {{ recsys_eval.exact_sum(deviation ~ ' * ' ~ deviation) }}
                - ({{ recsys_eval.exact_sum(deviation) }}) * ({{ recsys_eval.exact_sum(deviation) }})
                / count({{ expression }})
            ) / count({{ expression }}),
            cast(0 as {{ recsys_eval.type_double() }})
        )
    end
{%- endmacro %}
