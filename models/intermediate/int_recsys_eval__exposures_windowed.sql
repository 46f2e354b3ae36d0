{{ config(materialized='view') }}

{%- set tenant_key = recsys_eval.string_literal(recsys_eval.config_var('recsys_eval__tenant_key', 'tenant')) -%}
{%- set surface_key = recsys_eval.string_literal(recsys_eval.config_var('recsys_eval__surface_key', 'surface')) %}

with

exposures as (

    select * from {{ ref('stg_recsys_eval__exposures') }}

),

windowed as (

    -- offline time split: exposures are filtered on their own ts, independently of outcomes
    select * from exposures
    where {{ recsys_eval.in_test_window('exposed_at') }}

),

final as (

    select
        *,
        coalesce(
            {{ recsys_eval.map_lookup('context', tenant_key) }},
            ''
        ) as tenant,
        coalesce(
            {{ recsys_eval.map_lookup('context', surface_key) }},
            ''
        ) as surface

    from windowed

)

select * from final
