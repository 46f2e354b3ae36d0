{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set srm_slice_keys = recsys_eval.as_key_list(recsys_eval.config_var('recsys_eval__srm_slice_keys', [])) %}

with

assignments as (

    select * from {{ ref('stg_recsys_eval__assignments') }}

),

valid as (

    -- SRM counts assignment rows (reference §5.9): non-empty request_id and variant, experiment
    -- filter applied, duplicates counted every time; exposures are not involved
    select
        variant,
        {{ recsys_eval.segment_key('context', srm_slice_keys) }} as segment_key

    from assignments
    where
        request_id != ''
        and variant != ''
        and {{ recsys_eval.matches_experiment('experiment_id') }}

),

scoped as (

    select
        'global' as scope,
        '__all__' as segment_key,
        variant

    from valid
    {% if srm_slice_keys | length > 0 %}
    union all

    -- per-segment SRM only when var recsys_eval__srm_slice_keys is set (assignment context)
    select
        'segment' as scope,
        segment_key,
        variant

    from valid
    {% endif %}
),

final as (

    select
        scope,
        segment_key,
        variant,
        cast(count(*) as {{ dbt.type_bigint() }}) as observed_rows

    from scoped
    group by
        scope,
        segment_key,
        variant

)

select * from final
