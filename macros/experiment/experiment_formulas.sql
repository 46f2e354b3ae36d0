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

{#-
    experiment_ratio_unit_variance(numerator_sum, numerator_squared_sum, cross_sum, denominator_sum,
    denominator_squared_sum, units): the user-level delta-method variance of a ratio metric
    R = sum(e) / sum(d) over n randomization units (per unit u: e_u events, d_u requests), scaled per
    unit so that Var(R) = result / n (the shape of experiment_relative_lift_se's variances):
        n Var(R) = (s_e^2 - 2 R s_ed + R^2 s_d^2) / mean(d)^2 = n sum((e_u - R d_u)^2) / sum(d)^2
    with population moments (divide by n), computed from the unit sums sum(e), sum(e^2), sum(e d),
    sum(d), sum(d^2). This equals n times the cluster-robust (CR0, no small-sample factor) sandwich
    variance of the per-request mean. Null when n or sum(d) is 0; clamped at 0 against rounding.
-#}
{% macro experiment_ratio_unit_variance(
    numerator_sum, numerator_squared_sum, cross_sum, denominator_sum, denominator_squared_sum, units
) -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set ratio = '(cast((' ~ numerator_sum ~ ') as ' ~ double ~ ') / cast((' ~ denominator_sum ~ ') as ' ~ double ~ '))' -%}
    case
        when ({{ units }}) = 0 or ({{ denominator_sum }}) = 0 then cast(null as {{ double }})
        else greatest(
            0.0e0,
            cast(({{ numerator_squared_sum }}) as {{ double }})
            - 2.0e0 * {{ ratio }} * cast(({{ cross_sum }}) as {{ double }})
            + {{ ratio }} * {{ ratio }} * cast(({{ denominator_squared_sum }}) as {{ double }})
        )
        * cast(({{ units }}) as {{ double }})
        / (cast(({{ denominator_sum }}) as {{ double }}) * cast(({{ denominator_sum }}) as {{ double }}))
    end
{%- endmacro %}

{#-
    experiment_difference_se(variance1, n1, variance0, n0): the standard error sqrt(v1 / n1 + v0 / n0)
    of a difference of two independent means whose units have variances v1 and v0 (unpooled, Welch
    form); null when an arm has no unit or a variance is null.
-#}
{% macro experiment_difference_se(variance1, n1, variance0, n0) -%}
    case
        when ({{ n1 }}) > 0 and ({{ n0 }}) > 0
            then sqrt(
                ({{ variance1 }}) / cast(({{ n1 }}) as {{ recsys_eval.type_double() }})
                + ({{ variance0 }}) / cast(({{ n0 }}) as {{ recsys_eval.type_double() }})
            )
        else cast(null as {{ recsys_eval.type_double() }})
    end
{%- endmacro %}

{#-
    experiment_wald_z(estimate, standard_error, null_value): the Wald statistic
    (estimate - null_value) / standard_error; null when the standard error is null or not positive
    (a test without variance has no p-value rather than the reference's p = 1).
-#}
{% macro experiment_wald_z(estimate, standard_error, null_value='0.0e0') -%}
    case
        when ({{ standard_error }}) > 0
            then (({{ estimate }}) - ({{ null_value }})) / ({{ standard_error }})
        else cast(null as {{ recsys_eval.type_double() }})
    end
{%- endmacro %}


{#- The unit sums of the user-level delta method (ratio metrics events / requests over units), as
    select-list items over a relation with one row per unit and its tallies `requests`, `clicks`,
    `conversions`, `clicked_requests`, `converted_requests`, `revenue`; used for the segment and the
    global scope alike. -#}
{% macro experiment_unit_moment_sums() -%}
    count(*) as units,
    sum(requests * requests) as unit_requests_squared_sum,
    sum(clicks * clicks) as unit_clicks_squared_sum,
    sum(clicks * requests) as unit_clicks_requests_sum,
    sum(conversions * conversions) as unit_conversions_squared_sum,
    sum(conversions * requests) as unit_conversions_requests_sum,
    sum(clicked_requests * clicked_requests) as unit_clicked_requests_squared_sum,
    sum(clicked_requests * requests) as unit_clicked_requests_requests_sum,
    sum(converted_requests * converted_requests) as unit_converted_requests_squared_sum,
    sum(converted_requests * requests) as unit_converted_requests_requests_sum,
    {{ recsys_eval.exact_sum('revenue * revenue') }} as unit_revenue_squared_sum,
    {{ recsys_eval.exact_sum('revenue * requests') }} as unit_revenue_requests_sum
{%- endmacro %}
