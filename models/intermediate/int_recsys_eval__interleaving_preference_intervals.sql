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

user_scope_entries as (

    -- one entry per scope a user is engaged in, with the user's score there (the segment key
    -- length-prefixed, so that joined entries cannot be read two ways)
    select
        user_id,
        {{ dbt.concat([
            'scope', "':'", 'cast(' ~ dbt.length('segment_key') ~ ' as ' ~ dbt.type_string() ~ ')', "':'",
            'segment_key', "':'", 'cast(preference_score as ' ~ dbt.type_string() ~ ')',
        ]) }} as scope_entry

    from engaged_scopes

),

user_memberships as (

    -- the set of (scope, segment, score) a user counts in: users with the same set add their
    -- weights to the same replicate sums, so their weights are summed per set first
    select
        user_id,
        {{ recsys_eval.distinct_set_key('scope_entry') }} as membership

    from user_scope_entries
    group by user_id

),

membership_scopes as (

    select distinct
        user_memberships.membership,
        engaged_scopes.scope,
        engaged_scopes.segment_key,
        engaged_scopes.preference_score

    from user_memberships
    inner join engaged_scopes
        on user_memberships.user_id = engaged_scopes.user_id

),

user_draws as (

    -- Poisson bootstrap over users: every engaged user gets an independent Poisson(1) weight per
    -- replicate from md5('<seed>|<user_id>|<replicate>'), drawn once and the same in every scope,
    -- on every engine and for any row order
    select
        user_memberships.membership,
        replicates.replicate,
        {{ recsys_eval.hash_uniform(
            recsys_eval.bootstrap_replicate_key(interleaving.seed, 'user_memberships.user_id', 'replicates.replicate')) }}
            as draw

    from user_memberships
    cross join replicates

),

user_weights as (

    select
        membership,
        replicate,
        {{ recsys_eval.bootstrap_poisson_weight('draw') }} as weight

    from user_draws

),

membership_weights as (

    -- integer sums: exact in any order
    select
        membership,
        replicate,
        sum(weight) as weight

    from user_weights
    group by
        membership,
        replicate

),

drawn_weights as (

    -- a set of users that a replicate did not draw adds nothing to it
    select * from membership_weights
    where weight > 0

),

scoped_weights as (

    select
        membership_scopes.scope,
        membership_scopes.segment_key,
        membership_scopes.preference_score,
        drawn_weights.replicate,
        drawn_weights.weight

    from membership_scopes
    inner join drawn_weights
        on membership_scopes.membership = drawn_weights.membership

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
