{{ config(enabled=recsys_eval.using_source('rankers')) }}
{%- set interleaving = recsys_eval.interleaving_config() -%}
{%- set alpha = (1 - interleaving.bootstrap_ci_level) / 2 %}

with

user_preferences as (

    select * from {{ ref('int_recsys_eval__interleaving_user_preferences') }}

),

replicates as (

    select cast(generated_number as {{ dbt.type_bigint() }}) as replicate
    from ({{ dbt.generate_series(interleaving.bootstrap_iterations) }}) as series

),

engaged_scopes as (

    select * from user_preferences
    where is_engaged

),

engaged_users as (

    -- a user's weights are the same in every scope: drawn once per user, not once per scope
    select distinct user_id
    from engaged_scopes

),

user_draws as (

    -- Poisson bootstrap over users: every engaged user gets an independent Poisson(1) weight per
    -- replicate from md5('<seed>|<user_id>|<replicate>'), the same in every scope, on every engine
    -- and for any row order
    select
        engaged_users.user_id,
        replicates.replicate,
        {{ recsys_eval.hash_uniform(
            recsys_eval.bootstrap_replicate_key(interleaving.seed, 'engaged_users.user_id', 'replicates.replicate')) }}
            as draw

    from engaged_users
    cross join replicates

),

user_weights as (

    select
        user_id,
        replicate,
        {{ recsys_eval.bootstrap_poisson_weight('draw') }} as weight

    from user_draws

),

drawn_weights as (

    -- a user that a replicate did not draw adds nothing to it
    select * from user_weights
    where weight > 0

),

scoped_weights as (

    select
        engaged_scopes.scope,
        engaged_scopes.segment_key,
        engaged_scopes.preference_score,
        drawn_weights.replicate,
        drawn_weights.weight

    from engaged_scopes
    inner join drawn_weights
        on engaged_scopes.user_id = drawn_weights.user_id

),

replicate_shares as (

    -- a replicate that drew no user has no row (it is skipped). The weighted sum is exact as a
    -- plain sum, in any order: every term is an integer weight times 0, 1/2 or 1, a multiple of
    -- 1/2 far below 2^52
    select
        scope,
        segment_key,
        replicate,
        {{ recsys_eval.safe_divide('sum(weight * preference_score)', 'sum(weight)') }} as replicate_share

    from scoped_weights
    group by
        scope,
        segment_key,
        replicate

),

ordered_shares as (

    select
        scope,
        segment_key,
        replicate_share,
        row_number() over (
            partition by scope, segment_key
            order by replicate_share, replicate
        ) - 1 as share_index,
        count(*) over (partition by scope, segment_key) as replicates

    from replicate_shares

),

final as (

    -- percentile interval as the offline bootstrap picks it: sorted shares[floor(a (B - 1))] and
    -- shares[ceil((1 - a) (B - 1))], a = (1 - level) / 2, B = replicates that drew a user
    select
        scope,
        segment_key,
        cast(max(replicates) as {{ dbt.type_bigint() }}) as replicates,
        cast(max(
            case when share_index = floor({{ alpha }} * (replicates - 1)) then replicate_share end
        ) as {{ recsys_eval.type_double() }}) as ci_lower,
        cast(max(
            case when share_index = ceil((1 - {{ alpha }}) * (replicates - 1)) then replicate_share end
        ) as {{ recsys_eval.type_double() }}) as ci_upper,
        cast({{ interleaving.bootstrap_ci_level }} as {{ recsys_eval.type_double() }}) as ci_level

    from ordered_shares
    group by
        scope,
        segment_key

)

select * from final
