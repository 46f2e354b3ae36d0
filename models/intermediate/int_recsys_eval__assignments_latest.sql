{{ config(enabled=var('recsys_eval__using_assignments', true)) }}

with

assignments as (

    select * from {{ ref('stg_recsys_eval__assignments') }}

),

valid as (

    -- rows with an empty request_id or variant are "missing" and skipped (reference §2.4)
    select * from assignments
    where
        request_id != ''
        and variant != ''

),

in_experiment as (

    select * from valid
    where {{ recsys_eval.matches_experiment('experiment_id') }}

),

ordered as (

    select
        *,
        row_number() over (partition by request_id order by load_seq desc, line_no desc) as request_assignment_seq_desc,
        count(*) over (partition by request_id) as request_assignment_rows

    from in_experiment

),

latest as (

    -- the last row in file order wins, even when its variant differs
    select
        request_id,
        assignment_row_id,
        experiment_id,
        variant,
        user_id,
        context,
        {{ recsys_eval.segment_key('context', var('recsys_eval__srm_slice_keys', [])) }} as srm_segment_key,
        assigned_at,
        request_assignment_rows,
        load_seq,
        line_no

    from ordered
    where request_assignment_seq_desc = 1

)

select * from latest
