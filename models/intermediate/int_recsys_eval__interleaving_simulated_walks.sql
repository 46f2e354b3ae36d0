{{ config(enabled=recsys_eval.using_source('rankers'), materialized=recsys_eval.view_on_duckdb()) }}
{#-
    The reference's interleaving (§7.2) as a bounded, unrolled picking walk: one step places one
    item. A team's pick is the first item of its own list not yet placed (the reference's cursor
    walk skips and consumes placed items, which comes to the same); a team with no such item is
    exhausted for good, because the placed set only grows.
      team_draft          step 1: the coin picks the starting team; then the turn goes to the team
                          that did not pick last (the reference's strict A, B, A, ... turns, where
                          an exhausted team's turn passes to the other).
      balanced, optimized the team with fewer items picks; equal counts: the step's coin.
    Deliberate fix: when the preferred team is exhausted the other team picks, and the walk stops
    when both are exhausted or the list has slot_limit items, so every algorithm terminates (the
    reference's balanced and optimized loop forever in that case). With that fix balanced and
    optimized place the same items (their only difference was how they hung).
    The coin of step k: md5('<seed>|<request_id>|<k>') -> u in [0, 1); 'A' when u < 1/2
    (recsys_eval.interleaving_coin_team): deterministic, independent of file order, replayable.
    One row per request: the placed items in slot order and the teams that placed them
    (int_recsys_eval__interleaving_simulated_items unnests them). Its own model, a table on Spark:
    step k's placed_items is written in terms of step k-1's several times, and a filter on the
    walk's result (Spark infers size(placed_items) > 0 from the unnest) that Spark's optimizer
    pushes down through the steps substitutes every step into the next, a plan exponential in the
    walk's length (a 2 GB driver heap filled at 6 steps); a table stops the push at its scan.
-#}
{%- set interleaving = recsys_eval.interleaving_config() -%}
{%- set steps = 1 -%}
{#- The walk's length comes from the built requests; where they are not built yet (compile, lint,
    docs before a build) one step keeps the SQL valid. -#}
{%- set longest = recsys_eval.compile_time_value(
    ref('int_recsys_eval__interleaving_requests'),
    'select cast(max(case when slot_limit < items_a_count + items_b_count then slot_limit'
    ~ ' else items_a_count + items_b_count end) as bigint) from '
    ~ ref('int_recsys_eval__interleaving_requests')) -%}
{%- if longest.value is not none -%}
{%- set steps = longest.value | int -%}
{%- if steps > interleaving.max_steps -%}
{{ exceptions.raise_compiler_error(
"interleaving: a simulated list would have " ~ steps ~ " items, more than var "
~ "recsys_eval__interleaving_max_steps (" ~ interleaving.max_steps ~ "); set "
~ "interleaving.max_results (or raise the var)") }}
{%- endif -%}
{%- endif -%}
{%- set steps = [steps, 1] | max %}
{{ longest.marker }}

with

requests as (

    select * from {{ ref('int_recsys_eval__interleaving_requests') }}

),

step_0 as (

    select
        request_id,
        items_a,
        items_b,
        slot_limit,
        {{ recsys_eval.empty_string_array() }} as placed_items,
        '' as team_sequence,
        cast(0 as {{ dbt.type_bigint() }}) as team_a_count,
        cast(0 as {{ dbt.type_bigint() }}) as team_b_count,
        cast(null as {{ dbt.type_string() }}) as picked_team

    from requests

),
{% for step in range(1, steps + 1) %}
candidates_{{ step }} as (

    select
        request_id,
        items_a,
        items_b,
        slot_limit,
        placed_items,
        team_sequence,
        team_a_count,
        team_b_count,
        case
            when slot_limit >= {{ step }} then {{ recsys_eval.array_first_not_in('items_a', 'placed_items') }}
        end as candidate_a,
        case
            when slot_limit >= {{ step }} then {{ recsys_eval.array_first_not_in('items_b', 'placed_items') }}
        end as candidate_b,
        {% if interleaving.algorithm == 'team_draft' and step == 1 -%}
        {{ recsys_eval.interleaving_coin_team(interleaving.seed, 'request_id', step) }}
        {%- elif interleaving.algorithm == 'team_draft' -%}
        case when picked_team = 'A' then 'B' else 'A' end
        {%- else -%}
        case
            when team_a_count < team_b_count then 'A'
            when team_a_count > team_b_count then 'B'
            else {{ recsys_eval.interleaving_coin_team(interleaving.seed, 'request_id', step) }}
        end
        {%- endif %} as preferred_team

    from step_{{ step - 1 }}

),

choices_{{ step }} as (

    select
        *,
        case
            when preferred_team = 'A' and candidate_a is not null then 'A'
            when preferred_team = 'B' and candidate_b is not null then 'B'
            when candidate_a is not null then 'A'
            when candidate_b is not null then 'B'
        end as picked_team

    from candidates_{{ step }}

),

step_{{ step }} as (

    select
        request_id,
        items_a,
        items_b,
        slot_limit,
        case
            when picked_team = 'A' then {{ recsys_eval.array_append_element('placed_items', 'candidate_a') }}
            when picked_team = 'B' then {{ recsys_eval.array_append_element('placed_items', 'candidate_b') }}
            else placed_items
        end as placed_items,
        {{ dbt.concat(['team_sequence', "coalesce(picked_team, '')"]) }} as team_sequence,
        team_a_count + case when picked_team = 'A' then 1 else 0 end as team_a_count,
        team_b_count + case when picked_team = 'B' then 1 else 0 end as team_b_count,
        picked_team

    from choices_{{ step }}

),
{% endfor %}
final as (

    select
        request_id,
        placed_items,
        team_sequence

    from step_{{ steps }}

)

select * from final
