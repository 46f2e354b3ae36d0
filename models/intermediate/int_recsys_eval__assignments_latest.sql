{#- DuckDB: a view, so a consumer reads only the columns it needs (the context maps are never
    written); elsewhere a table -#}
{{ config(
    enabled=recsys_eval.using_source('assignments'),
    materialized=recsys_eval.view_on_duckdb()
) }}

with

assignments as (

    select * from {{ ref('stg_recsys_eval__assignments') }}

),

in_experiment as (

    -- rows with an empty request_id or variant are "missing" and skipped (reference §2.4); the
    -- experiment filter applied
    select
        *,
        {{ recsys_eval.file_position_key() }} as row_key

    from assignments
    where
        request_id != ''
        and variant != ''
        and {{ recsys_eval.matches_experiment('experiment_id') }}

),

latest as (

    -- the last row in file order wins, even when its variant differs: every column is the value of
    -- that row (one grouped pass; a consumer that reads only the variant aggregates only the variant)
    select
        request_id,
        {{ recsys_eval.value_at_max('assignment_row_id', 'row_key') }} as assignment_row_id,
        {{ recsys_eval.value_at_max('experiment_id', 'row_key') }} as experiment_id,
        {{ recsys_eval.value_at_max('variant', 'row_key') }} as variant,
        {{ recsys_eval.value_at_max('user_id', 'row_key') }} as user_id,
        {{ recsys_eval.value_at_max('context', 'row_key') }} as context,
        {{ recsys_eval.value_at_max(
            recsys_eval.segment_key('context', recsys_eval.config_var('recsys_eval__srm_slice_keys', [])), 'row_key'
        ) }} as srm_segment_key,
        {{ recsys_eval.value_at_max('assigned_at', 'row_key') }} as assigned_at,
        count(*) as request_assignment_rows,
        {{ recsys_eval.value_at_max('load_seq', 'row_key') }} as load_seq,
        {{ recsys_eval.value_at_max('line_no', 'row_key') }} as line_no

    from in_experiment
    group by request_id

)

select * from latest
