{{ config(enabled=recsys_eval.using_source('rankers')) }}
{#-
    The exact two-sided sign test (binomial, p = 1/2) of three counts per scope and segment:
      impressions  impressions A won against impressions B won (ties left out)
      users        engaged users preferring A against users preferring B
      first_pick   impressions whose first slot is A's against B's (a health check: the coin)
    With n = successes + failures and m = min(successes, failures) the distribution is symmetric,
    so SciPy's binomtest (method minlike) is p = min(1, 2 P(X <= m)), and 1 when m = n/2 or n = 0.
    P(X <= m) = sum_{j <= m} exp(ln C(n, j) - n ln 2), with ln C(n, j) a running sum of
    ln((n - j + 1) / j) over the enumerated j (portable: no lgamma).
-#}

with

impressions as (

    select * from {{ ref('fct_interleaving_impressions') }}

),

user_preferences as (

    select * from {{ ref('int_recsys_eval__interleaving_user_preferences') }}

),

scoped_impressions as (

    select
        'global' as scope,
        '__all__' as segment_key,
        winner,
        first_team

    from impressions

    union all

    select
        'segment' as scope,
        segment_key,
        winner,
        first_team

    from impressions

),

counts as (

    select
        scope,
        segment_key,
        'impressions' as test_name,
        sum(case when winner = 'A' then 1 else 0 end) as successes,
        sum(case when winner = 'B' then 1 else 0 end) as failures

    from scoped_impressions
    group by
        scope,
        segment_key

    union all

    select
        scope,
        segment_key,
        'first_pick' as test_name,
        sum(case when first_team = 'A' then 1 else 0 end) as successes,
        sum(case when first_team = 'B' then 1 else 0 end) as failures

    from scoped_impressions
    group by
        scope,
        segment_key

    union all

    select
        scope,
        segment_key,
        'users' as test_name,
        sum(case when is_engaged and preferred_ranker = 'A' then 1 else 0 end) as successes,
        sum(case when is_engaged and preferred_ranker = 'B' then 1 else 0 end) as failures

    from user_preferences
    group by
        scope,
        segment_key

),

sized as (

    select
        scope,
        segment_key,
        test_name,
        cast(successes as {{ dbt.type_bigint() }}) as successes,
        cast(failures as {{ dbt.type_bigint() }}) as failures,
        cast(successes + failures as {{ dbt.type_bigint() }}) as trials,
        cast(case when successes < failures then successes else failures end as {{ dbt.type_bigint() }})
            as tail_count

    from counts

),

tail_ranges as (

    select
        scope,
        segment_key,
        test_name,
        trials,
        {{ recsys_eval.integer_sequence('tail_count') }} as tail_outcomes

    from sized
    where trials > 0

),

tail_outcomes as (

    {{ recsys_eval.unnest_with_ordinality('tail_ranges', 'tail_outcomes', 'outcome', 'outcome_position') }}

),

log_steps as (

    select
        scope,
        segment_key,
        test_name,
        trials,
        outcome,
        {{ recsys_eval.interleaving_log_binomial_step('trials', 'outcome') }} as log_step

    from tail_outcomes

),

log_coefficients as (

    select
        scope,
        segment_key,
        test_name,
        trials,
        outcome,
        sum(log_step) over (
            partition by scope, segment_key, test_name
            order by outcome
            rows between unbounded preceding and current row
        ) as log_coefficient,
        -- ln 2^n, the log of the number of outcomes
        cast(trials as {{ recsys_eval.type_double() }})
        * ln(cast(2 as {{ recsys_eval.type_double() }})) as log_outcome_count

    from log_steps

),

running_tails as (

    -- the tail probabilities added in a fixed order (outcome 0, 1, ...: the smallest first), so the
    -- p-value does not depend on the row order of a parallel aggregate; not recsys_eval.exact_sum,
    -- whose fixed absolute scale (2^-80) would round a tiny tail probability away
    select
        scope,
        segment_key,
        test_name,
        outcome,
        sum(exp(log_coefficient - log_outcome_count)) over (
            partition by scope, segment_key, test_name
            order by outcome
            rows between unbounded preceding and current row
        ) as running_tail

    from log_coefficients

),

tails as (

    select
        scope,
        segment_key,
        test_name,
        {{ recsys_eval.value_at_max('running_tail', 'outcome') }} as lower_tail

    from running_tails
    group by
        scope,
        segment_key,
        test_name

),

final as (

    select
        sized.scope,
        sized.segment_key,
        sized.test_name,
        sized.successes,
        sized.failures,
        sized.trials,
        {{ recsys_eval.safe_divide('sized.successes', 'sized.trials') }} as success_share,
        case
            when sized.trials = 0 or 2 * sized.tail_count = sized.trials then cast(1 as {{ recsys_eval.type_double() }})
            when 2 * tails.lower_tail > 1 then cast(1 as {{ recsys_eval.type_double() }})
            else cast(2 * tails.lower_tail as {{ recsys_eval.type_double() }})
        end as p_value_exact,
        {{ recsys_eval.interleaving_sign_test_normal_p('sized.successes', 'sized.failures') }} as p_value_normal

    from sized
    left join tails
        on
            sized.scope = tails.scope
            and sized.segment_key = tails.segment_key
            and sized.test_name = tails.test_name

)

select * from final
