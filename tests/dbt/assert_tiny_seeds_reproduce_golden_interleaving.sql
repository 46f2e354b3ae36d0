{#-
    The bundled tiny seeds reproduce the reference's golden interleaving numbers (golden/interleaving.json,
    reference §11.5) on every target, for every algorithm and seed (the golden does not depend on the
    draws, §11.6 (f)) and for both sources: simulated from the ranker seeds, or credited from the logged
    seed (the lists the reference showed). With the interleaving outcome seed: 2 requests, A 0, B 1,
    1 tie, win rates 0 / 1, p = 2 (1 - Phi(1)) = 0.31731050786291415; the exact sign test 1.
    With the default outcome seed (r1 click i1, which only ranker A has; r2 a conversion, ignored):
    A 1, B 0, 1 tie, win rates 1 / 0, the same p. Tolerance 1e-12.
-#}
{{ config(
    enabled=(
        recsys_eval.config_var('recsys_eval__source', 'seeds') == 'seeds'
        and recsys_eval.using_source('rankers')
        and (recsys_eval.config_var('recsys_eval__interleaving_max_results', 0) or 0) in [0, 10]
    )
) }}
{%- set golden_outcomes = recsys_eval.config_var('recsys_eval__outcomes_seed', 'recsys_eval_tiny_outcomes') == 'recsys_eval_tiny_outcomes_interleaving' %}

with

results as (

    select * from {{ ref('fct_interleaving_results') }}
    where scope = 'global'

),

expected as (

    select
        2 as requests,
        {{ 0 if golden_outcomes else 1 }} as wins_a,
        {{ 1 if golden_outcomes else 0 }} as wins_b,
        1 as ties,  -- noqa: RF04
        cast({{ 0 if golden_outcomes else 1 }} as {{ recsys_eval.type_double() }}) as win_rate_a,
        cast({{ 1 if golden_outcomes else 0 }} as {{ recsys_eval.type_double() }}) as win_rate_b,
        cast(0.31731050786291415 as {{ recsys_eval.type_double() }}) as p_value,
        cast(1 as {{ recsys_eval.type_double() }}) as p_value_exact

),

mismatches as (

    select
        expected.*,
        results.requests as actual_requests,
        results.p_value as actual_p_value

    from expected
    left join results
        on 1 = 1
    where
        results.requests is null
        or results.requests != expected.requests
        or results.wins_a != expected.wins_a
        or results.wins_b != expected.wins_b
        or results.ties != expected.ties
        or abs(results.win_rate_a - expected.win_rate_a) > 1e-12
        or abs(results.win_rate_b - expected.win_rate_b) > 1e-12
        or abs(results.p_value - expected.p_value) > 1e-12
        or abs(results.p_value_exact - expected.p_value_exact) > 1e-12

)

select * from mismatches
