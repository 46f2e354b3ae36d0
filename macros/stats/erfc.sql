{#-
    erfc(x): the complementary error function 1 - erf(x) as a SQL double expression, for any real x.
    W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969),
    the coefficient sets of netlib specfun CALERF:
      |x| <= 0.46875      1 - x * A(x^2) / B(x^2)
      0.46875 < y <= 4    exp(-y^2) * C(y) / D(y)                      (y = |x|)
      4 < y < 26.543      exp(-y^2) / y * (1/sqrt(pi) - z * P(z) / Q(z)) (z = 1 / y^2)
      y >= 26.543         0 (erfc underflows)
    and erfc(-y) = 2 - erfc(y). exp(-y^2) is exp(-s^2) * exp(-(y - s)(y + s)) with s = floor(16y)/16,
    as in CALERF, so the tail keeps its relative accuracy (about 1e-15 relative for x >= 0).
    `x` is repeated many times in the result: pass a column, not a large expression.
    Portable: exp, floor, abs, case and double literals only.
-#}
{% macro erfc(x) -%}
    {{ return(adapter.dispatch('erfc', 'recsys_eval')(x)) }}
{%- endmacro %}

{% macro default__erfc(x) -%}
    {%- set v = 'cast((' ~ x ~ ') as ' ~ recsys_eval.type_double() ~ ')' -%}
    case
        when {{ v }} is null then cast(null as {{ recsys_eval.type_double() }})
        when abs({{ v }}) <= 4.6875e-1 then 1.0e0 - {{ recsys_eval.erf_small(v) }}
        when {{ v }} > 0.0e0 then {{ recsys_eval.erfc_positive(v) }}
        else 2.0e0 - {{ recsys_eval.erfc_positive('(-' ~ v ~ ')') }}
    end
{%- endmacro %}

{#- erf_small(x): Cody's erf for |x| <= 0.46875 only (relative accuracy near 0). -#}
{% macro erf_small(x) -%}
    {%- set z = '(' ~ x ~ ') * (' ~ x ~ ')' -%}
    (({{ x }}) * {{ recsys_eval.stats_polynomial(z, [
        '1.85777706184603153e-1', '3.16112374387056560e0', '1.13864154151050156e2',
        '3.77485237685302021e2', '3.20937758913846947e3']) }}
    / {{ recsys_eval.stats_polynomial(z, [
        '1.0e0', '2.36012909523441209e1', '2.44024637934444173e2',
        '1.28261652607737228e3', '2.84423683343917062e3']) }})
{%- endmacro %}

{#- erfc_positive(y): Cody's erfc for y > 0.46875 (y must be positive). -#}
{% macro erfc_positive(y) -%}
    {%- set s = '(floor((' ~ y ~ ') * 1.6e1) / 1.6e1)' -%}
    {%- set exp_minus_square = 'exp(-' ~ s ~ ' * ' ~ s ~ ') * exp(-((' ~ y ~ ') - ' ~ s ~ ') * ((' ~ y ~ ') + ' ~ s ~ '))' -%}
    {%- set z = '(1.0e0 / ((' ~ y ~ ') * (' ~ y ~ ')))' -%}
    (case
        when ({{ y }}) <= 4.0e0 then
            {{ exp_minus_square }}
            * {{ recsys_eval.stats_polynomial(y, [
                '2.15311535474403846e-8', '5.64188496988670089e-1', '8.88314979438837594e0',
                '6.61191906371416295e1', '2.98635138197400131e2', '8.81952221241769090e2',
                '1.71204761263407058e3', '2.05107837782607147e3', '1.23033935479799725e3']) }}
            / {{ recsys_eval.stats_polynomial(y, [
                '1.0e0', '1.57449261107098347e1', '1.17693950891312499e2', '5.37181101862009858e2',
                '1.62138957456669019e3', '3.29079923573345963e3', '4.36261909014324716e3',
                '3.43936767414372164e3', '1.23033935480374942e3']) }}
        when ({{ y }}) < 2.6543e1 then
            {{ exp_minus_square }}
            * (5.6418958354775628695e-1 - {{ z }} * {{ recsys_eval.stats_polynomial(z, [
                '1.63153871373020978e-2', '3.05326634961232344e-1', '3.60344899949804439e-1',
                '1.25781726111229246e-1', '1.60837851487422766e-2', '6.58749161529837803e-4']) }}
            / {{ recsys_eval.stats_polynomial(z, [
                '1.0e0', '2.56852019228982242e0', '1.87295284992346047e0', '5.27905102951428412e-1',
                '6.05183413124413191e-2', '2.33520497626869185e-3']) }})
            / ({{ y }})
        else 0.0e0
    end)
{%- endmacro %}
