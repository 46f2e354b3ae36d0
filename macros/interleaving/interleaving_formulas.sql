{#-
    The interleaving formulas, one macro per idea (docs/interleaving.md). Arguments are SQL
    expressions; pass columns.
-#}

{#- interleaving_coin_key(seed, request_id, step): the hash key of the coin of one picking step,
    '<seed>|<request_id>|<step>' (seed and step are compile-time integers). -#}
{% macro interleaving_coin_key(seed, request_id, step) -%}
    {{ dbt.concat(["'" ~ (seed | int) ~ "|'", request_id, "'|" ~ (step | int) ~ "'"]) }}
{%- endmacro %}


{#- interleaving_coin_team(seed, request_id, step): the team a coin gives, 'A' when
    u = first 52 bits of md5('<seed>|<request_id>|<step>') / 2^52 is below 1/2, else 'B'.
    A serving system replays it with the same three values (docs/interleaving.md). -#}
{% macro interleaving_coin_team(seed, request_id, step) -%}
    case
        when {{ recsys_eval.hash_uniform(recsys_eval.interleaving_coin_key(seed, request_id, step)) }} < 0.5
            then 'A'
        else 'B'
    end
{%- endmacro %}


{#- interleaving_winner(credits_a, credits_b): 'A' when A's credits exceed B's, 'B' when B's exceed
    A's, else 'tie' (0-0 included), reference §7.3. -#}
{% macro interleaving_winner(credits_a, credits_b) -%}
    case
        when {{ credits_a }} > {{ credits_b }} then 'A'
        when {{ credits_b }} > {{ credits_a }} then 'B'
        else 'tie'
    end
{%- endmacro %}


{#- interleaving_sign_test_normal_p(wins_a, wins_b): the reference's two-sided normal approximation
    to the sign test, n = wins_a + wins_b, z = (wins_a - n/2) / sqrt(n/4), p = 2 (1 - Phi(|z|)),
    no continuity correction; 1 when n = 0 (reference §7.3). -#}
{% macro interleaving_sign_test_normal_p(wins_a, wins_b) -%}
    {%- set double = recsys_eval.type_double() -%}
    {%- set n = '(cast(' ~ wins_a ~ ' as ' ~ double ~ ') + cast(' ~ wins_b ~ ' as ' ~ double ~ '))' -%}
    case
        when ({{ wins_a }}) + ({{ wins_b }}) = 0 then cast(1 as {{ double }})
        else {{ recsys_eval.normal_two_sided_p_value(
            '((cast(' ~ wins_a ~ ' as ' ~ double ~ ') - ' ~ n ~ ' / cast(2 as ' ~ double ~ ')) / sqrt('
            ~ n ~ ' / cast(4 as ' ~ double ~ ')))') }}
    end
{%- endmacro %}


{#- interleaving_log_binomial_step(n, j): ln C(n, j) - ln C(n, j - 1) = ln((n - j + 1) / j) for
    j >= 1 and 0 for j = 0; its running sum over j is ln C(n, j), the exact sign test's log
    coefficient (no lgamma needed, so it runs on every engine). -#}
{% macro interleaving_log_binomial_step(n, j) -%}
    case
        when {{ j }} = 0 then cast(0 as {{ recsys_eval.type_double() }})
        else ln(cast({{ n }} - {{ j }} + 1 as {{ recsys_eval.type_double() }}) / cast({{ j }} as {{ recsys_eval.type_double() }}))
    end
{%- endmacro %}


{#- interleaving_preference_score(wins_a, wins_b): a user's preference from their impressions:
    1 when A won more impressions, 0 when B did, 1/2 on a tie (Chapelle et al. 2012). -#}
{% macro interleaving_preference_score(wins_a, wins_b) -%}
    case
        when {{ wins_a }} > {{ wins_b }} then cast(1 as {{ recsys_eval.type_double() }})
        when {{ wins_b }} > {{ wins_a }} then cast(0 as {{ recsys_eval.type_double() }})
        else cast(0.5 as {{ recsys_eval.type_double() }})
    end
{%- endmacro %}
