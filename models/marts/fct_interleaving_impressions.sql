{{ config(enabled=recsys_eval.using_source('rankers')) }}

with

impressions as (

    select * from {{ ref('int_recsys_eval__interleaving_impressions') }}

),

credits as (

    select * from {{ ref('fct_interleaving_credits') }}

),

credit_facts as (

    select
        request_id,
        sum(case when team = 'A' then clicks else 0 end) as credits_a,
        sum(case when team = 'B' then clicks else 0 end) as credits_b

    from credits
    group by request_id

),

joined as (

    select
        impressions.request_id,
        impressions.user_id,
        impressions.segment_key,
        impressions.impressed_at,
        impressions.source,
        impressions.algorithm,
        impressions.rankers_agree,
        cast(coalesce(impressions.items_shown, 0) as {{ dbt.type_bigint() }}) as items_shown,
        cast(coalesce(impressions.team_a_items, 0) as {{ dbt.type_bigint() }}) as team_a_items,
        cast(coalesce(impressions.team_b_items, 0) as {{ dbt.type_bigint() }}) as team_b_items,
        impressions.first_team,
        cast(coalesce(credit_facts.credits_a, 0) as {{ dbt.type_bigint() }}) as credits_a,
        cast(coalesce(credit_facts.credits_b, 0) as {{ dbt.type_bigint() }}) as credits_b

    from impressions
    left join credit_facts
        on impressions.request_id = credit_facts.request_id

),

final as (

    select
        *,
        {{ recsys_eval.interleaving_winner('credits_a', 'credits_b') }} as winner,
        -- GrowthBook's paired analysis: the pairs of slots the two teams competed for
        case when team_a_items < team_b_items then team_a_items else team_b_items end as competitive_pairs

    from joined

)

select * from final
