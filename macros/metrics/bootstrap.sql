{#-
    bootstrap_poisson_weight(uniform): the Poisson(1) count of a uniform number in [0, 1) by the
    inverse CDF (thresholds F(w) = e^-1 * sum_{j<=w} 1/j!, computed here in full double precision,
    up to w = 15; P(W > 15) < 1e-13). The weight of a case in one replicate of the Poisson bootstrap
    (Hanley & MacGibbon 2006; Chamandy et al. 2012): resampling n cases with replacement is replaced
    by an independent Poisson(1) count per case, so each case's weight depends only on its own key.
    The count is the first w with uniform < F(w) (15 when none), i.e. the number of thresholds at or
    below the uniform number: a case chain that stops at the first match (two comparisons for most
    draws, 0 and 1 cover 74 %), so pass the uniform number as a column, computed once.
-#}
{% macro bootstrap_poisson_weight(uniform) -%}
    {%- set thresholds = [] -%}
    {%- set ns = namespace(term=0.36787944117144233, cumulative=0.0) -%}
    {%- for w in range(0, 15) -%}
        {%- set ns.cumulative = ns.cumulative + ns.term -%}
        {%- do thresholds.append(ns.cumulative) -%}
        {%- set ns.term = ns.term / (w + 1) -%}
    {%- endfor -%}
    case
        {%- for threshold in thresholds %}
        when {{ uniform }} < cast({{ '%.17g' | format(threshold) }} as {{ recsys_eval.type_double() }}) then {{ loop.index0 }}
        {%- endfor %}
        else {{ thresholds | length }}
    end
{%- endmacro %}


{#-
    bootstrap_replicate_key(seed, request_id, replicate): the hash key of one case in one replicate,
    '<seed>|<request_id>|<replicate>' (all three are needed: same seed + same case + same replicate =
    same weight, on any engine).
-#}
{% macro bootstrap_replicate_key(seed, request_id, replicate) -%}
    {{ dbt.concat([
        "'" ~ (seed | int) ~ "|'",
        request_id,
        "'|'",
        "cast(" ~ replicate ~ " as " ~ dbt.type_string() ~ ")",
    ]) }}
{%- endmacro %}
