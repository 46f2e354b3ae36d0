-- The shop's own model: it stays in the target's schema while the package's models go to theirs.
with

impressions as (

    select * from {{ source('app', 'impressions') }}

),

requests as (

    select distinct
        req_id,
        json_extract_string(context_json, '$.surface') as surface

    from impressions

),

final as (

    select
        surface,
        count(*) as request_count

    from requests
    group by surface

)

select * from final
