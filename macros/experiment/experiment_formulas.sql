{#-
    Experiment formulas (reference §5.4, §5.6, §5.9 and the lift intervals that the reference lacks).
    Every macro renders one SQL expression of type double (recsys_eval.type_double, never float)
    from columns; arguments are repeated in the result, so pass columns, not large expressions.
    Portable: arithmetic, case, sqrt, floor, least/greatest and window aggregates only.
-#}

{#-
    experiment_pooled_variance(s1, n1, s0, n0): the variance of the pooled two-proportion z-test,
    p (1 - p) (1/n1 + 1/n0) with p = (s1 + s0) / (n1 + n0) (reference §5.6). Null when n1 or n0 is 0.
    Negative when the pooled successes exceed the pooled trials (events are counts, not indicators):
    the reference then returns NaN and aborts; callers turn that into a null p-value and a status.
-#}
{% macro experiment_pooled_variance(s1, n1, s0, n0) -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set pooled = '(cast((' ~ s1 ~ ') + (' ~ s0 ~ ') as ' ~ double ~ ') / cast((' ~ n1 ~ ') + (' ~ n0 ~ ') as ' ~ double ~ '))' -%}
    case
        when ({{ n1 }}) = 0 or ({{ n0 }}) = 0 then cast(null as {{ double }})
        else {{ pooled }} * (1.0e0 - {{ pooled }})
            * (1.0e0 / cast(({{ n1 }}) as {{ double }}) + 1.0e0 / cast(({{ n0 }}) as {{ double }}))
    end
{%- endmacro %}

{#-
    experiment_z_test_p_value(z, pooled_variance, n1, n0): the reference's two-sided p-value
    2 (1 - Phi(|z|)) with its guards: 1 when n1 = 0, n0 = 0 or se = 0; null (the reference's NaN)
    when the pooled variance is negative.
-#}
{% macro experiment_z_test_p_value(z, pooled_variance, n1, n0) -%}
    case
        when ({{ n1 }}) = 0 or ({{ n0 }}) = 0 or ({{ pooled_variance }}) = 0 then 1.0e0
        when ({{ pooled_variance }}) < 0 then cast(null as {{ recsys_eval.type_double() }})
        else {{ recsys_eval.normal_two_sided_p_value(z) }}
    end
{%- endmacro %}

{#-
    experiment_tally_variance(total, sum_of_squares, n): the population variance sum((y - mean)^2) / n
    of a per-request tally y (clicks, conversions) from its sum and sum of squares; null when n = 0,
    clamped at 0 against rounding. For 0/1 tallies it is p (1 - p), so the unpooled standard error
    built from it is the Wald one; for counts it is the right per-request variance.
-#}
{% macro experiment_tally_variance(total, sum_of_squares, n) -%}
    {%- set double = recsys_eval.type_double() -%}
    case
        when ({{ n }}) = 0 then cast(null as {{ double }})
        else greatest(
            0.0e0,
            cast(({{ sum_of_squares }}) as {{ double }}) / cast(({{ n }}) as {{ double }})
            - (cast(({{ total }}) as {{ double }}) / cast(({{ n }}) as {{ double }}))
            * (cast(({{ total }}) as {{ double }}) / cast(({{ n }}) as {{ double }}))
        )
    end
{%- endmacro %}

{#-
    experiment_relative_lift_se(rate1, variance1, n1, rate0, variance0, n0): delta-method standard
    error of the relative lift rate1 / rate0 - 1 for independent arms:
    sqrt(v1 / n1 / rate0^2 + rate1^2 v0 / n0 / rate0^4). Null when rate0 = 0 or an arm is empty.
-#}
{% macro experiment_relative_lift_se(rate1, variance1, n1, rate0, variance0, n0) -%}
    case
        when ({{ rate0 }}) = 0 or ({{ n1 }}) = 0 or ({{ n0 }}) = 0 then cast(null as {{ recsys_eval.type_double() }})
        else sqrt(
            ({{ variance1 }}) / ({{ n1 }}) / (({{ rate0 }}) * ({{ rate0 }}))
            + ({{ rate1 }}) * ({{ rate1 }}) * ({{ variance0 }}) / ({{ n0 }})
            / (({{ rate0 }}) * ({{ rate0 }}) * ({{ rate0 }}) * ({{ rate0 }}))
        )
    end
{%- endmacro %}

{#-
    experiment_adjusted_p_value(method, p_value, p_rank, family_size): the multiple-comparison
    adjusted p-value over the whole family (reference §5.6, Holm new). p_rank is the 1-based rank
    of the p-value in ascending order (ties in any fixed order; null p-values ranked last) and
    family_size the number of non-null p-values. Window expressions over the whole relation:
      none        p
      bonferroni  min(1, p m)
      fdr_bh      min over ranks j' >= j of min(1, p_(j') m / j')  (Benjamini-Hochberg step-up)
      holm        max over ranks j' <= j of min(1, (m - j' + 1) p_(j'))  (Holm step-down)
    Tied p-values get equal adjusted values in both step procedures. Null p in, null out.
-#}
{% macro experiment_adjusted_p_value(method, p_value, p_rank, family_size) -%}
    {%- set double = recsys_eval.type_double() -%}
    case
        when ({{ p_value }}) is null then cast(null as {{ double }})
    {%- if method == 'none' %}
        else ({{ p_value }})
    {%- elif method == 'bonferroni' %}
        else least(1.0e0, ({{ p_value }}) * ({{ family_size }}))
    {%- elif method == 'fdr_bh' %}
        else min(least(1.0e0, ({{ p_value }}) * ({{ family_size }}) / ({{ p_rank }}))) over (
            order by {{ p_rank }} desc
            rows between unbounded preceding and current row
        )
    {%- elif method == 'holm' %}
        else max(least(1.0e0, (({{ family_size }}) - ({{ p_rank }}) + 1) * ({{ p_value }}))) over (
            order by {{ p_rank }}
            rows between unbounded preceding and current row
        )
    {%- else %}
        {{ exceptions.raise_compiler_error("recsys_eval.experiment_adjusted_p_value: unknown method '" ~ method ~ "'") }}
    {%- endif %}
    end
{%- endmacro %}

{#-
    experiment_chi_square_term(observed, expected): (observed - expected)^2 / expected, or 0 when the
    expected count is not positive (such cells do not contribute, reference §5.9).
-#}
{% macro experiment_chi_square_term(observed, expected) -%}
    case
        when ({{ expected }}) > 0 then
            (cast(({{ observed }}) as {{ recsys_eval.type_double() }}) - ({{ expected }}))
            * (cast(({{ observed }}) as {{ recsys_eval.type_double() }}) - ({{ expected }}))
            / ({{ expected }})
        else 0.0e0
    end
{%- endmacro %}

{#-
    experiment_floor_rank(n, quantile_literal): the 1-based row number of the reference's floor-style
    percentile (§5.4): index floor(q (n - 1)) (0-based) in ascending order, computed in double
    arithmetic like the reference (0.95 as a double, not a decimal). n >= 1.
-#}
{% macro experiment_floor_rank(n, quantile_literal) -%}
    cast(floor({{ quantile_literal }} * cast(({{ n }}) - 1 as {{ recsys_eval.type_double() }})) as {{ dbt.type_bigint() }}) + 1
{%- endmacro %}
