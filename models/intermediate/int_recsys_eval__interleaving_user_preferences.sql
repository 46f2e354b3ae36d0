{{ config(enabled=recsys_eval.using_source('rankers')) }}

with

impressions as (

    select * from {{ ref('fct_interleaving_impressions') }}

),

scoped as (

    -- every impression counts once globally and once in its segment
    select
        'global' as scope,
        '__all__' as segment_key,
        user_id,
        winner,
        credits_a,
        credits_b

    from impressions

    union all

    select
        'segment' as scope,
        segment_key,
        user_id,
        winner,
        credits_a,
        credits_b

    from impressions

),

per_user as (

    select
        scope,
        segment_key,
        user_id,
        count(*) as impressions,
        sum(case when winner = 'A' then 1 else 0 end) as wins_a,
        sum(case when winner = 'B' then 1 else 0 end) as wins_b,
        sum(case when winner = 'tie' then 1 else 0 end) as ties,  -- noqa: RF04
        sum(credits_a) as credits_a,
        sum(credits_b) as credits_b

    from scoped
    group by
        scope,
        segment_key,
        user_id

),

final as (

    select
        scope,
        segment_key,
        user_id,
        cast(impressions as {{ dbt.type_bigint() }}) as impressions,
        cast(wins_a as {{ dbt.type_bigint() }}) as wins_a,
        cast(wins_b as {{ dbt.type_bigint() }}) as wins_b,
        cast(ties as {{ dbt.type_bigint() }}) as ties,  -- noqa: RF04
        cast(credits_a as {{ dbt.type_bigint() }}) as credits_a,
        cast(credits_b as {{ dbt.type_bigint() }}) as credits_b,
        -- a user who clicked at least once has a preference (A, B or tie); the others are left out
        credits_a + credits_b > 0 as is_engaged,
        {{ recsys_eval.interleaving_winner('wins_a', 'wins_b') }} as preferred_ranker,
        {{ recsys_eval.interleaving_preference_score('wins_a', 'wins_b') }} as preference_score

    from per_user

)

select * from final
