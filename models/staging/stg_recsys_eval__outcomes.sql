with

source as (

    {{ recsys_eval.staged_source('outcomes') }}

),

renamed as (

    select
        ----------  ids
        {{ dbt.concat([
            "cast(load_seq as " ~ dbt.type_string() ~ ")", "':'", "cast(line_no as " ~ dbt.type_string() ~ ")"
        ]) }} as outcome_row_id,
        coalesce(request_id, '') as request_id,
        coalesce(user_id, '') as user_id,
        coalesce(item_id, '') as item_id,

        ----------  event (the code compares event types case-insensitively)
        coalesce(event_type, '') as event_type,
        lower(coalesce(event_type, '')) as event_type_normalized,
        cast(value as {{ recsys_eval.type_double() }}) as event_value,

        ----------  timestamps
        cast(ts as {{ dbt.type_timestamp() }}) as occurred_at,

        ----------  lineage
        load_id,
        load_seq,
        source_file,
        line_no

    from source

)

select * from renamed
