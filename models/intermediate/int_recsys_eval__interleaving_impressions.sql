{{ config(enabled=var('recsys_eval__using_rankers', true)) }}
-- depends_on: {{ ref('stg_recsys_eval__interleaved_exposures') }}
{%- set interleaving = recsys_eval.interleaving_config() %}

with

requests as (

    select * from {{ ref('int_recsys_eval__interleaving_requests') }}

),

{% if interleaving.source == 'logged' -%}
logged as (

    select * from {{ ref('stg_recsys_eval__interleaved_exposures') }}

),

logged_ranked as (

    -- the first logged list wins for a duplicated request_id (as the first exposure wins, §2.3)
    select
        *,
        row_number() over (partition by request_id order by load_seq, line_no) as occurrence_rank

    from logged

),

impressions as (

    select
        logged_ranked.request_id,
        logged_ranked.interleaved_exposure_row_id as source_row_id,
        logged_ranked.user_id,
        logged_ranked.context,
        logged_ranked.exposed_at as impressed_at,
        'logged' as source,
        case
            when logged_ranked.algorithm = '' then '{{ interleaving.algorithm }}'
            else logged_ranked.algorithm
        end as algorithm,
        -- known only when the rankers' own lists were loaded too
        requests.rankers_agree

    from logged_ranked
    left join requests
        on logged_ranked.request_id = requests.request_id
    where logged_ranked.occurrence_rank = 1

),
{%- else -%}
impressions as (

    -- the reference's path: every request on both sides is re-simulated (logged lists unused)
    select
        request_id,
        request_id as source_row_id,
        user_id,
        context,
        ranked_at as impressed_at,
        'simulated' as source,  -- noqa: RF04
        '{{ interleaving.algorithm }}' as algorithm,
        rankers_agree

    from requests

),
{%- endif %}

final as (

    select
        request_id,
        source_row_id,
        user_id,
        {{ recsys_eval.segment_key('context', interleaving.slice_keys) }} as segment_key,
        impressed_at,
        source,
        algorithm,
        rankers_agree

    from impressions

)

select * from final
