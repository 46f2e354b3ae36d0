{#-
    The engine-specific pieces of recsys_eval.staged_source (a package on a host's own tables).
-#}

{#- epoch_to_timestamp(expr, unit): epoch seconds (s), milliseconds (ms) or microseconds (us) as a
    timestamp (UTC, without a time zone, as the loader writes ts). -#}
{% macro epoch_to_timestamp(expr, unit) -%}
    {{ return(adapter.dispatch('epoch_to_timestamp', 'recsys_eval')(expr, unit)) }}
{%- endmacro %}

{% macro default__epoch_to_timestamp(expr, unit) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.epoch_to_timestamp has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{#- make_timestamp(bigint) reads microseconds since the epoch and returns a naive (UTC) timestamp. -#}
{% macro duckdb__epoch_to_timestamp(expr, unit) -%}
    {%- set factor = {'s': '1000000', 'ms': '1000', 'us': '1'}[unit] -%}
    make_timestamp(cast({{ expr }} * {{ factor }} as bigint))
{%- endmacro %}

{% macro spark__epoch_to_timestamp(expr, unit) -%}
    {%- set function = {'s': 'timestamp_seconds', 'ms': 'timestamp_millis', 'us': 'timestamp_micros'}[unit] -%}
    {%- if unit == 's' -%}
    timestamp_seconds({{ expr }})
    {%- else -%}
    {{ function }}(cast({{ expr }} as bigint))
    {%- endif -%}
{%- endmacro %}


{#- any_value(expr): one value of the group (the context of an exposure's item rows, equal on every row). -#}
{% macro any_value(expr) -%}
    {{ return(adapter.dispatch('any_value', 'recsys_eval')(expr)) }}
{%- endmacro %}

{% macro default__any_value(expr) -%}
    any_value({{ expr }})
{%- endmacro %}

{% macro spark__any_value(expr) -%}
    first({{ expr }}, true)
{%- endmacro %}


{#- to_json_text(expr): a struct as JSON text (context given as a struct). -#}
{% macro to_json_text(expr) -%}
    {{ return(adapter.dispatch('to_json_text', 'recsys_eval')(expr)) }}
{%- endmacro %}

{% macro default__to_json_text(expr) -%}
    cast(to_json({{ expr }}) as {{ dbt.type_string() }})
{%- endmacro %}

{% macro spark__to_json_text(expr) -%}
    to_json({{ expr }})
{%- endmacro %}


{#- collect_exposure_items(): in a group by of item rows (columns item_id, rank, propensity,
    logging_propensity, target_propensity), the ranked list as the loader's items array
    (struct(item_id, rank, propensity, logging_propensity, target_propensity)), in rank order
    (a missing rank last), then item_id. -#}
{% macro collect_exposure_items() -%}
    {{ return(adapter.dispatch('collect_exposure_items', 'recsys_eval')()) }}
{%- endmacro %}

{% macro default__collect_exposure_items() -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.collect_exposure_items has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__collect_exposure_items() -%}
    list(
        struct_pack(
            item_id := item_id,
            rank := rank,
            propensity := propensity,
            logging_propensity := logging_propensity,
            target_propensity := target_propensity
        )
        order by rank asc nulls last, item_id
    )
{%- endmacro %}

{#- array_sort orders structs field by field: (missing-rank flag, rank, item_id) first. -#}
{% macro spark__collect_exposure_items() -%}
    transform(
        array_sort(collect_list(struct(
            rank is null as sort_missing,
            rank as sort_rank,
            item_id as sort_item,
            named_struct(
                'item_id', item_id,
                'rank', rank,
                'propensity', propensity,
                'logging_propensity', logging_propensity,
                'target_propensity', target_propensity
            ) as item
        ))),
        x -> x.item
    )
{%- endmacro %}
