{{ config(enabled=recsys_eval.using_source('rankers')) }}

with

source as (

    {{ recsys_eval.staged_source('interleaved_exposures') }}

),

renamed as (

    select
        ----------  ids
        {{ dbt.concat([
            "cast(load_seq as " ~ dbt.type_string() ~ ")", "':'", "cast(line_no as " ~ dbt.type_string() ~ ")"
        ]) }} as interleaved_exposure_row_id,
        coalesce(request_id, '') as request_id,
        coalesce(user_id, '') as user_id,

        ----------  the shown list (items carry item_id, rank, team) and its context
        items,
        {{ recsys_eval.array_length('items') }} as item_count,
        lower(coalesce(algorithm, '')) as algorithm,
        context,

        ----------  timestamps
        cast(ts as {{ dbt.type_timestamp() }}) as exposed_at,

        ----------  lineage
        load_id,
        load_seq,
        source_file,
        line_no

    from source

)

select * from renamed
