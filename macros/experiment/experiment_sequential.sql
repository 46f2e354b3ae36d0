{#-
    Safe-to-peek inference (issue 20 items 5 and 6): always-valid confidence sequences for a lift,
    their always-valid p-value, the sequential SRM Bayes factor and the over-time buckets.
    Each formula macro renders one SQL expression of type double from columns; arguments are
    repeated in the result, so pass columns, not large expressions. Portable (arithmetic, case,
    sqrt, ln, exp) except where dispatched (log-gamma, epoch -> timestamp).
-#}

{#-
    experiment_sequential_config(): the validated vars of the sequential read-out and the over-time
    mart as a dict (the CLI validates experiment.sequential / experiment.over_time first, naming the
    YAML key; these errors name the var for dbt users):
      tuning_parameter     number > 0, the confidence sequence's expected sample size (GrowthBook's
                           sequential_tuning_parameter, default 5000)
      srm_concentration    number > 0, the Dirichlet prior's concentration of the sequential SRM
                           (ssrm-test / GrowthBook default 10000)
      bucket               hour | day | week, the over-time bucket (default day, UTC; weeks start Monday)
    Not SQL, so not dispatched.
-#}
{% macro experiment_sequential_config() -%}
    {%- set config = {} -%}
    {%- for name, default in [('tuning_parameter', 5000), ('srm_concentration', 10000)] -%}
        {%- set value = recsys_eval.experiment_number_var('sequential_' ~ name, default) -%}
        {%- if not value > 0 -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__experiment_sequential_" ~ name ~ " must be a number > 0, got: " ~ value) }}
        {%- endif -%}
        {%- do config.update({name: value}) -%}
    {%- endfor -%}
    {%- set bucket = recsys_eval.config_var('recsys_eval__experiment_over_time_bucket', 'day') -%}
    {%- set bucket = 'day' if bucket is none else bucket | string | trim | lower -%}
    {%- if bucket not in ['hour', 'day', 'week'] -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__experiment_over_time_bucket must be one of hour, day, week, got: '" ~ bucket ~ "'") }}
    {%- endif -%}
    {%- do config.update({'bucket': bucket}) -%}
    {{ return(config) }}
{%- endmacro %}

{#-
    experiment_cs_rho_squared(alpha, tuning_parameter): rho^2 of the asymptotic confidence sequence
    (Howard et al. 2021; Waudby-Smith et al. 2023 eq. 161, as gbstats SequentialTwoSidedTTest):
        rho^2 = (-2 ln(alpha) + ln(-2 ln(alpha) + 1)) / tuning_parameter
    the mixing scale that makes the sequence tightest at tuning_parameter total units.
-#}
{% macro experiment_cs_rho_squared(alpha, tuning_parameter) -%}
    ((-2.0e0 * ln({{ alpha }}) + ln(-2.0e0 * ln({{ alpha }}) + 1.0e0)) / ({{ tuning_parameter }}))
{%- endmacro %}

{#-
    experiment_cs_half_width(standard_error, total_units, alpha, tuning_parameter): the half-width of
    the always-valid (1 - alpha) confidence sequence around a lift whose fixed-horizon standard error
    is standard_error after total_units units in both arms (gbstats, eq. 9 of Waudby-Smith et al.):
        s^2 = se^2 N,  half-width = s sqrt(2 (N rho^2 + 1) ln(sqrt(N rho^2 + 1) / alpha) / (N rho)^2)
    Null when N = 0 or the standard error is null.
-#}
{% macro experiment_cs_half_width(standard_error, total_units, alpha, tuning_parameter) -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set n = 'cast((' ~ total_units ~ ') as ' ~ double ~ ')' -%}
    {%- set n_rho2 = '(' ~ n ~ ' * ' ~ recsys_eval.experiment_cs_rho_squared(alpha, tuning_parameter) ~ ')' -%}
    case
        when ({{ total_units }}) > 0 and ({{ standard_error }}) is not null
            then ({{ standard_error }}) * sqrt(
                2.0e0 * ({{ n_rho2 }} + 1.0e0) * (0.5e0 * ln({{ n_rho2 }} + 1.0e0) - ln({{ alpha }}))
                / {{ n_rho2 }}
            )
        else cast(null as {{ double }})
    end
{%- endmacro %}

{#-
    experiment_cs_p_value(estimate, standard_error, total_units, alpha, tuning_parameter): the
    always-valid p-value of lift = 0 (gbstats, eq. 155 of Waudby-Smith et al.): with
    t = N rho^2 + 1 and the e-value E = exp(rho^2 N (estimate / se)^2 / (2 t)) / sqrt(t),
        p = min(1, 1 / E) = min(1, exp(0.5 ln(t) - rho^2 N (estimate / se)^2 / (2 t)))
    (computed in logs: no overflow). Null without a positive standard error.
-#}
{% macro experiment_cs_p_value(estimate, standard_error, total_units, alpha, tuning_parameter) -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set n = 'cast((' ~ total_units ~ ') as ' ~ double ~ ')' -%}
    {%- set n_rho2 = '(' ~ n ~ ' * ' ~ recsys_eval.experiment_cs_rho_squared(alpha, tuning_parameter) ~ ')' -%}
    case
        when ({{ total_units }}) > 0 and ({{ standard_error }}) > 0
            then least(1.0e0, exp(
                0.5e0 * ln({{ n_rho2 }} + 1.0e0)
                - {{ n_rho2 }} * (({{ estimate }}) / ({{ standard_error }})) * (({{ estimate }}) / ({{ standard_error }}))
                / (2.0e0 * ({{ n_rho2 }} + 1.0e0))
            ))
        else cast(null as {{ double }})
    end
{%- endmacro %}

{#-
    experiment_ssrm_cell_log_bf(count, prior_alpha, null_probability): one arm's term of the log
    Bayes factor of the Dirichlet-multinomial sequential SRM test (Lindon & Malek 2022; ssrm-test):
        lgamma(a_i + x_i) - lgamma(a_i) - x_i ln(p_i)
    with x_i the arm's cumulative count, a_i = concentration * p_i its prior mass and p_i its
    expected share. Summed over the arms and added to experiment_ssrm_total_log_bf it gives
    ln BF = ln m1(x) - ln m0(x), the multinomial coefficients cancelling. An arm with p_i = 0 never
    reaches here (the caller makes any count in it a certain mismatch).
-#}
{% macro experiment_ssrm_cell_log_bf(count, prior_alpha, null_probability) -%}
    (
        {{ recsys_eval.experiment_log_gamma('(' ~ prior_alpha ~ ') + (' ~ count ~ ')') }}
        - {{ recsys_eval.experiment_log_gamma(prior_alpha) }}
        - cast(({{ count }}) as {{ recsys_eval.type_double() }}) * ln({{ null_probability }})
    )
{%- endmacro %}

{#- experiment_ssrm_total_log_bf(total_count, concentration): lgamma(A) - lgamma(A + n), A = sum a_i. -#}
{% macro experiment_ssrm_total_log_bf(total_count, concentration) -%}
    (
        {{ recsys_eval.experiment_log_gamma(concentration) }}
        - {{ recsys_eval.experiment_log_gamma('(' ~ concentration ~ ') + (' ~ total_count ~ ')') }}
    )
{%- endmacro %}

{#-
    experiment_log_gamma(x): ln Gamma(x) for x > 0. DuckDB lgamma(); the default (Spark has no
    log-gamma) shifts x up by 8 (ln Gamma(x) = ln Gamma(x + 8) - ln(x (x + 1) ... (x + 7))) and applies
    Stirling's series with terms to 1/(1188 y^9) (truncation below 3e-13 at y >= 8).
-#}
{% macro experiment_log_gamma(x) -%}
    {{ return(adapter.dispatch('experiment_log_gamma', 'recsys_eval')(x)) }}
{%- endmacro %}

{% macro duckdb__experiment_log_gamma(x) -%}
    lgamma({{ x }})
{%- endmacro %}

{% macro default__experiment_log_gamma(x) -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set x0 = 'cast((' ~ x ~ ') as ' ~ double ~ ')' -%}
    {%- set y = '(' ~ x0 ~ ' + 8.0e0)' -%}
    (
        ({{ y }} - 0.5e0) * ln({{ y }}) - {{ y }} + 0.91893853320467274178e0
        + 1.0e0 / (12.0e0 * {{ y }})
        - 1.0e0 / (360.0e0 * {{ y }} * {{ y }} * {{ y }})
        + 1.0e0 / (1260.0e0 * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }})
        - 1.0e0 / (1680.0e0 * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }})
        + 1.0e0 / (1188.0e0 * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }} * {{ y }})
        - ln(
            {{ x0 }} * ({{ x0 }} + 1.0e0) * ({{ x0 }} + 2.0e0) * ({{ x0 }} + 3.0e0)
            * ({{ x0 }} + 4.0e0) * ({{ x0 }} + 5.0e0) * ({{ x0 }} + 6.0e0) * ({{ x0 }} + 7.0e0)
        )
    )
{%- endmacro %}

{#-
    experiment_bucket_start_epoch_us(epoch_us, bucket): the start of the UTC bucket holding a time
    in microseconds since the epoch, as a bigint: hour, day, or week (Monday 00:00; the epoch was a
    Thursday, hence the 3-day shift). floor() keeps times before 1970 in the right bucket.
-#}
{% macro experiment_bucket_start_epoch_us(epoch_us, bucket) -%}
    {%- set width = {'hour': 3600000000, 'day': 86400000000, 'week': 604800000000}[bucket] -%}
    {%- set shift = 259200000000 if bucket == 'week' else 0 -%}
    cast(
        floor(cast(({{ epoch_us }}) + {{ shift }} as {{ recsys_eval.type_double() }}) / {{ width }}.0e0) * {{ width }}
        - {{ shift }} as {{ dbt.type_bigint() }}
    )
{%- endmacro %}

{#- experiment_timestamp_from_epoch_us(epoch_us): a UTC timestamp. DuckDB make_timestamp, Spark timestamp_micros. -#}
{% macro experiment_timestamp_from_epoch_us(epoch_us) -%}
    {{ return(adapter.dispatch('experiment_timestamp_from_epoch_us', 'recsys_eval')(epoch_us)) }}
{%- endmacro %}

{% macro default__experiment_timestamp_from_epoch_us(epoch_us) -%}
    timestamp_micros({{ epoch_us }})
{%- endmacro %}

{% macro duckdb__experiment_timestamp_from_epoch_us(epoch_us) -%}
    make_timestamp({{ epoch_us }})
{%- endmacro %}

{#-
    experiment_moment_increment(e, e_before, d, d_before): how much a unit's product of tallies grows
    in a bucket where its tallies e_before, d_before grow by e, d:
        (e_before + e)(d_before + d) - e_before d_before = e_before d + e d_before + e d
    (as a sum() select item; with e = d it is the growth of a square, 2 e_before e + e^2). Summed over
    a variant's units and then cumulated over the buckets, it gives sum over units of E_u D_u at
    the end of each bucket without a row per unit per bucket.
-#}
{% macro experiment_moment_increment(e, e_before, d, d_before) -%}
    sum(({{ e_before }}) * ({{ d }}) + ({{ e }}) * ({{ d_before }}) + ({{ e }}) * ({{ d }}))
{%- endmacro %}
