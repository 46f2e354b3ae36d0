{{ config(enabled=recsys_eval.using_source('rankers')) }}

with

impressions as (

    select * from {{ ref('fct_interleaving_impressions') }}

),

user_preferences as (

    select * from {{ ref('int_recsys_eval__interleaving_user_preferences') }}

),

sign_tests as (

    select * from {{ ref('int_recsys_eval__interleaving_sign_tests') }}

),

preference_intervals as (

    select * from {{ ref('int_recsys_eval__interleaving_preference_intervals') }}

),

scoped_impressions as (

    select
        'global' as scope,
        '__all__' as segment_key,
        winner,
        credits_a,
        credits_b,
        competitive_pairs,
        items_shown,
        team_a_items,
        rankers_agree,
        source

    from impressions

    union all

    select
        'segment' as scope,
        segment_key,
        winner,
        credits_a,
        credits_b,
        competitive_pairs,
        items_shown,
        team_a_items,
        rankers_agree,
        source

    from impressions

),

impression_counts as (

    select
        scope,
        segment_key,
        count(*) as requests,
        sum(case when winner = 'A' then 1 else 0 end) as wins_a,
        sum(case when winner = 'B' then 1 else 0 end) as wins_b,
        sum(case when winner = 'tie' then 1 else 0 end) as ties,  -- noqa: RF04
        sum(credits_a) as credits_a,
        sum(credits_b) as credits_b,
        sum(competitive_pairs) as competitive_pairs,
        sum(items_shown) as items_shown,
        sum(team_a_items) as team_a_items,
        sum(case when credits_a + credits_b = 0 then 1 else 0 end) as impressions_without_clicks,
        sum(case when rankers_agree then 1 else 0 end) as rankers_agree_impressions,
        sum(case when rankers_agree is not null then 1 else 0 end) as rankers_known_impressions,
        min(source) as source  -- noqa: RF04

    from scoped_impressions
    group by
        scope,
        segment_key

),

user_counts as (

    select
        scope,
        segment_key,
        count(*) as users,  -- noqa: RF04
        sum(case when is_engaged then 1 else 0 end) as users_engaged,
        sum(case when is_engaged and preferred_ranker = 'A' then 1 else 0 end) as users_prefer_a,
        sum(case when is_engaged and preferred_ranker = 'B' then 1 else 0 end) as users_prefer_b,
        sum(case when is_engaged and preferred_ranker = 'tie' then 1 else 0 end) as users_tied,
        {{ recsys_eval.exact_sum('case when is_engaged then preference_score else 0 end') }} as preference_score_sum

    from user_preferences
    group by
        scope,
        segment_key

),

joined as (

    select
        impression_counts.*,
        user_counts.users,
        user_counts.users_engaged,
        user_counts.users_prefer_a,
        user_counts.users_prefer_b,
        user_counts.users_tied,
        user_counts.preference_score_sum,
        impression_test.p_value_exact,
        impression_test.p_value_normal,
        user_test.p_value_exact as preference_p_value_exact,
        first_pick_test.successes as first_pick_a,
        first_pick_test.p_value_exact as first_pick_p_value_exact,
        preference_intervals.ci_lower as preference_ci_lower,
        preference_intervals.ci_upper as preference_ci_upper,
        preference_intervals.ci_level as preference_ci_level,
        preference_intervals.replicates as preference_ci_replicates

    from impression_counts
    inner join user_counts
        on
            impression_counts.scope = user_counts.scope
            and impression_counts.segment_key = user_counts.segment_key
    inner join sign_tests as impression_test
        on
            impression_counts.scope = impression_test.scope
            and impression_counts.segment_key = impression_test.segment_key
            and impression_test.test_name = 'impressions'
    inner join sign_tests as user_test
        on
            impression_counts.scope = user_test.scope
            and impression_counts.segment_key = user_test.segment_key
            and user_test.test_name = 'users'
    inner join sign_tests as first_pick_test
        on
            impression_counts.scope = first_pick_test.scope
            and impression_counts.segment_key = first_pick_test.segment_key
            and first_pick_test.test_name = 'first_pick'
    left join preference_intervals
        on
            impression_counts.scope = preference_intervals.scope
            and impression_counts.segment_key = preference_intervals.segment_key

),

final as (

    select
        ----------  grain
        scope,
        segment_key,
        source,

        ----------  the reference's counts and statistics (§7.3)
        cast(requests as {{ dbt.type_bigint() }}) as requests,
        cast(wins_a as {{ dbt.type_bigint() }}) as wins_a,
        cast(wins_b as {{ dbt.type_bigint() }}) as wins_b,
        cast(ties as {{ dbt.type_bigint() }}) as ties,  -- noqa: RF04
        {{ recsys_eval.safe_divide('wins_a', 'wins_a + wins_b') }} as win_rate_a,
        {{ recsys_eval.safe_divide('wins_b', 'wins_a + wins_b') }} as win_rate_b,
        p_value_normal as p_value,
        p_value_exact,

        ----------  paired analysis per impression (credit per competitive pair)
        cast(credits_a as {{ dbt.type_bigint() }}) as credits_a,
        cast(credits_b as {{ dbt.type_bigint() }}) as credits_b,
        cast(competitive_pairs as {{ dbt.type_bigint() }}) as competitive_pairs,
        {{ recsys_eval.safe_divide('credits_a', 'competitive_pairs') }} as credit_a_per_pair,
        {{ recsys_eval.safe_divide('credits_b', 'competitive_pairs') }} as credit_b_per_pair,
        {{ recsys_eval.safe_divide('credits_a - credits_b', 'competitive_pairs') }} as credit_diff_per_pair,

        ----------  preference per user (share of engaged users preferring A, ties count 1/2)
        cast(users as {{ dbt.type_bigint() }}) as users,  -- noqa: RF04
        cast(users_engaged as {{ dbt.type_bigint() }}) as users_engaged,
        cast(users_prefer_a as {{ dbt.type_bigint() }}) as users_prefer_a,
        cast(users_prefer_b as {{ dbt.type_bigint() }}) as users_prefer_b,
        cast(users_tied as {{ dbt.type_bigint() }}) as users_tied,
        {{ recsys_eval.safe_divide('preference_score_sum', 'users_engaged') }} as preference_share_a,
        preference_ci_lower,
        preference_ci_upper,
        preference_ci_level,
        preference_ci_replicates,
        preference_p_value_exact,

        ----------  health
        {{ recsys_eval.safe_divide('team_a_items', 'items_shown') }} as team_a_item_share,
        {{ recsys_eval.safe_divide('first_pick_a', 'requests') }} as first_pick_a_share,
        first_pick_p_value_exact,
        {{ recsys_eval.safe_divide('impressions_without_clicks', 'requests') }} as no_click_share,
        cast(rankers_known_impressions as {{ dbt.type_bigint() }}) as rankers_known_impressions,
        case
            when rankers_known_impressions > 0
                then {{ recsys_eval.safe_divide('rankers_agree_impressions', 'rankers_known_impressions') }}
        end as rankers_agree_share

    from joined

)

select * from final
