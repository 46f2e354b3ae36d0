with

source as (

    {{ recsys_eval.staged_source('exposures') }}

),

renamed as (

    select
        ----------  ids
        {{ dbt.concat([
            "cast(load_seq as " ~ dbt.type_string() ~ ")", "':'", "cast(line_no as " ~ dbt.type_string() ~ ")"
        ]) }} as exposure_row_id,
        -- the reader's zero value: a missing id is the empty string, an ordinary join key
        coalesce(request_id, '') as request_id,
        coalesce(user_id, '') as user_id,

        ----------  list and context
        items,
        {{ recsys_eval.array_length('items') }} as item_count,
        context,

        ----------  serving
        cast(latency_ms as {{ recsys_eval.type_double() }}) as latency_ms,
        coalesce(error, false) as is_error,

        ----------  timestamps
        cast(ts as {{ dbt.type_timestamp() }}) as exposed_at,

        ----------  lineage (file order = load_seq, line_no)
        load_id,
        load_seq,
        source_file,
        line_no

    from source

)

select * from renamed
