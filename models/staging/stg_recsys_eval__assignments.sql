{{ config(enabled=recsys_eval.using_source('assignments')) }}

with

source as (

    {{ recsys_eval.staged_source('assignments') }}

),

renamed as (

    select
        ----------  ids
        {{ dbt.concat([
            "cast(load_seq as " ~ dbt.type_string() ~ ")", "':'", "cast(line_no as " ~ dbt.type_string() ~ ")"
        ]) }} as assignment_row_id,
        coalesce(request_id, '') as request_id,
        coalesce(user_id, '') as user_id,
        coalesce(experiment_id, '') as experiment_id,
        coalesce(variant, '') as variant,

        ----------  context (SRM segments only)
        context,

        ----------  timestamps
        cast(ts as {{ dbt.type_timestamp() }}) as assigned_at,

        ----------  lineage
        load_id,
        load_seq,
        source_file,
        line_no

    from source

)

select * from renamed
