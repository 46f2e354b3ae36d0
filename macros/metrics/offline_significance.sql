{#-
    offline_significance(): var recsys_eval__offline_significance as {enabled, permutations,
    iterations, seed, ci_level}, validated at compile time (not SQL, not dispatched). Defaults: off,
    1000 sign-flip replicates, 1000 bootstrap replicates, seed 42, level 0.95. The CLI passes the
    validated offline.significance block (alpha as ci_level = 1 - alpha).
-#}
{% macro offline_significance() -%}
    {%- set configured = recsys_eval.config_var('recsys_eval__offline_significance', {}) or {} -%}
    {%- if configured is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_significance must be a mapping, got: " ~ configured) }}
    {%- endif -%}
    {%- set known = ['enabled', 'permutations', 'iterations', 'seed', 'ci_level'] -%}
    {%- for key in configured -%}
        {%- if key not in known -%}
            {{ exceptions.raise_compiler_error("var recsys_eval__offline_significance: unknown key " ~ key) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set settings = {
        'enabled': configured.get('enabled', false) in [true, 'true', 'True'],
        'permutations': configured.get('permutations', 1000),
        'iterations': configured.get('iterations', 1000),
        'seed': configured.get('seed', 42),
        'ci_level': configured.get('ci_level', 0.95),
    } -%}
    {%- for key in ['permutations', 'iterations'] -%}
        {%- if settings[key] is boolean or settings[key] is not number or settings[key] != settings[key] | int
            or settings[key] < 1 or settings[key] > 100000 -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__offline_significance." ~ key ~ " must be an integer in [1, 100000], got: "
                ~ settings[key]) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if settings.seed is boolean or settings.seed is not number or settings.seed != settings.seed | int -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_significance.seed must be an integer, got: " ~ settings.seed) }}
    {%- endif -%}
    {%- if settings.ci_level is boolean or settings.ci_level is not number
        or settings.ci_level <= 0 or settings.ci_level >= 1 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_significance.ci_level must be in (0, 1), got: " ~ settings.ci_level) }}
    {%- endif -%}
    {{ return(settings) }}
{%- endmacro %}


{#-
    permutation_sign(uniform): the sign of one paired difference in one replicate of the paired
    randomization test: -1 when the uniform number is below 0.5 (the two runs' values swapped), else +1.
-#}
{% macro permutation_sign(uniform) -%}
    (case when {{ uniform }} < 5.0e-1 then -1.0e0 else 1.0e0 end)
{%- endmacro %}


{#-
    permutation_sign_key(seed, request_id, replicate): the hash key of a request's sign in one
    replicate, 'flip|<seed>|<request_id>|<replicate>' (the prefix keeps the signs independent of the
    bootstrap's weights, which hash '<seed>|<request_id>|<replicate>').
-#}
{% macro permutation_sign_key(seed, request_id, replicate) -%}
    {{ dbt.concat([
        "'flip|" ~ (seed | int) ~ "|'",
        request_id,
        "'|'",
        "cast(" ~ replicate ~ " as " ~ dbt.type_string() ~ ")",
    ]) }}
{%- endmacro %}


{#-
    paired_t_statistic(mean_difference, squared_deviation_sum, n): the paired t statistic
    mean / (sd / sqrt(n)), sd the sample standard deviation (n - 1) of the differences; null when
    n < 2 or every difference is the same (sd = 0: the t statistic is undefined).
-#}
{% macro paired_t_statistic(mean_difference, squared_deviation_sum, n) -%}
    case
        when ({{ n }}) < 2 or ({{ squared_deviation_sum }}) <= 0 then cast(null as {{ recsys_eval.type_double() }})
        else ({{ mean_difference }})
            / sqrt(({{ squared_deviation_sum }}) / (({{ n }}) - 1.0e0) / ({{ n }}))
    end
{%- endmacro %}


{#-
    permutation_p_value(exceedances, replicates): the Monte Carlo p-value of a randomization test,
    (1 + replicates whose |statistic| reaches the observed one) / (1 + replicates): the observed
    assignment counts as one of the permutations, so the p-value is never 0 (Phipson & Smyth 2010).
-#}
{% macro permutation_p_value(exceedances, replicates) -%}
    ((1.0e0 + ({{ exceedances }})) / (1.0e0 + ({{ replicates }})))
{%- endmacro %}
