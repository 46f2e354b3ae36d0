{#-
    normal_quantile(p): the standard normal quantile Phi^-1(p) as a SQL double expression.
    M. J. Wichura, Algorithm AS 241 (PPND16), Applied Statistics 37 (1988) 477-484: three degree-7
    rational approximations (|p - 0.5| <= 0.425; r = sqrt(-ln(min(p, 1 - p))) <= 5; r > 5), relative
    accuracy about 1e-16, closed form, no iteration. This is more accurate than the reference's
    Acklam approximation (relative error ~1e-9, §5.8), so a sample size can differ from the
    reference's only when n lies within ~1e-6 of an integer.
    p = 0 -> -Infinity, p = 1 -> +Infinity, p outside [0, 1] or null -> null.
    `p` is repeated many times in the result: pass a column.
-#}
{% macro normal_quantile(p) -%}
    {{ return(adapter.dispatch('normal_quantile', 'recsys_eval')(p)) }}
{%- endmacro %}

{% macro default__normal_quantile(p) -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set v = 'cast((' ~ p ~ ') as ' ~ double ~ ')' -%}
    {%- set q = '(' ~ v ~ ' - 5.0e-1)' -%}
    {%- set r_central = '(1.80625e-1 - ' ~ q ~ ' * ' ~ q ~ ')' -%}
    {%- set r = 'sqrt(-ln(least(' ~ v ~ ', 1.0e0 - ' ~ v ~ ')))' -%}
    {%- set r_middle = '(' ~ r ~ ' - 1.6e0)' -%}
    {%- set r_far = '(' ~ r ~ ' - 5.0e0)' -%}
    case
        when {{ v }} is null or {{ v }} < 0.0e0 or {{ v }} > 1.0e0 then cast(null as {{ double }})
        when {{ v }} = 0.0e0 then cast('-Infinity' as {{ double }})
        when {{ v }} = 1.0e0 then cast('Infinity' as {{ double }})
        when abs({{ q }}) <= 4.25e-1 then
            {{ q }} * {{ recsys_eval.stats_polynomial(r_central, [
                '2.5090809287301226727e3', '3.3430575583588128105e4', '6.7265770927008700853e4',
                '4.5921953931549871457e4', '1.3731693765509461125e4', '1.9715909503065514427e3',
                '1.3314166789178437745e2', '3.3871328727963666080e0']) }}
            / {{ recsys_eval.stats_polynomial(r_central, [
                '5.2264952788528545610e3', '2.8729085735721942674e4', '3.9307895800092710610e4',
                '2.1213794301586595867e4', '5.3941960214247511077e3', '6.8718700749205790830e2',
                '4.2313330701600911252e1', '1.0e0']) }}
        else (case when {{ q }} < 0.0e0 then -1.0e0 else 1.0e0 end) * (
            case
                when {{ r }} <= 5.0e0 then
                    {{ recsys_eval.stats_polynomial(r_middle, [
                        '7.74545014278341407640e-4', '2.27238449892691845833e-2', '2.41780725177450611770e-1',
                        '1.27045825245236838258e0', '3.64784832476320460504e0', '5.76949722146069140550e0',
                        '4.63033784615654529590e0', '1.42343711074968357734e0']) }}
                    / {{ recsys_eval.stats_polynomial(r_middle, [
                        '1.05075007164441684324e-9', '5.47593808499534494600e-4', '1.51986665636164571966e-2',
                        '1.48103976427480074590e-1', '6.89767334985100004550e-1', '1.67638483018380384940e0',
                        '2.05319162663775882187e0', '1.0e0']) }}
                else
                    {{ recsys_eval.stats_polynomial(r_far, [
                        '2.01033439929228813265e-7', '2.71155556874348757815e-5', '1.24266094738807843860e-3',
                        '2.65321895265761230930e-2', '2.96560571828504891230e-1', '1.78482653991729133580e0',
                        '5.46378491116411436990e0', '6.65790464350110377720e0']) }}
                    / {{ recsys_eval.stats_polynomial(r_far, [
                        '2.04426310338993978564e-15', '1.42151175831644588870e-7', '1.84631831751005468180e-5',
                        '7.86869131145613259100e-4', '1.48753612908506148525e-2', '1.36929880922735805310e-1',
                        '5.99832206555887937690e-1', '1.0e0']) }}
            end
        )
    end
{%- endmacro %}
