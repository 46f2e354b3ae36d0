{#-
    Exposure list facts for the data quality checks, computed on the list itself (array of struct item_id,
    rank, propensity, logging_propensity, target_propensity) instead of on its exploded item rows
    (stg_recsys_eval__exposure_items). Each agrees with the item-row rule it replaces: a missing item_id
    is '', a missing rank reads as 0, and an item's position is its place in the stable rank order.
    DuckDB: list functions with `lambda x:`; default: Spark's higher-order functions (`x ->`).
-#}

{#- exposure_list_has_duplicate_items(items): 1 when some item_id appears twice in the list, else 0
    (0 for a null or empty list). -#}
{% macro exposure_list_has_duplicate_items(items) -%}
    {{ return(adapter.dispatch('exposure_list_has_duplicate_items', 'recsys_eval')(items)) }}
{%- endmacro %}

{% macro default__exposure_list_has_duplicate_items(items) -%}
    case
        when {{ items }} is null then 0
        when size({{ items }}) > size(array_distinct(transform({{ items }}, list_entry -> coalesce(list_entry.item_id, ''))))
            then 1
        else 0
    end
{%- endmacro %}

{% macro duckdb__exposure_list_has_duplicate_items(items) -%}
    case
        when len({{ items }}) > len(list_distinct(list_transform({{ items }}, lambda list_entry: coalesce(list_entry.item_id, ''))))
            then 1
        else 0
    end
{%- endmacro %}


{#- exposure_list_has_rank_gap(items): 1 when the list's ranks (a missing one read as 0), sorted, are
    not exactly 1..n, i.e. some item's rank differs from its position in the stable rank order; else 0
    (0 for a null or empty list). -#}
{% macro exposure_list_has_rank_gap(items) -%}
    {{ return(adapter.dispatch('exposure_list_has_rank_gap', 'recsys_eval')(items)) }}
{%- endmacro %}

{% macro default__exposure_list_has_rank_gap(items) -%}
    case
        when {{ items }} is null or size({{ items }}) = 0 then 0
        when exists(
            zip_with(
                array_sort(transform({{ items }}, list_entry -> cast(coalesce(list_entry.rank, 0) as bigint))),
                sequence(cast(1 as bigint), cast(size({{ items }}) as bigint)),
                (sorted_rank, entry_position) -> sorted_rank != entry_position
            ),
            is_gap -> is_gap
        )
            then 1
        else 0
    end
{%- endmacro %}

{% macro duckdb__exposure_list_has_rank_gap(items) -%}
    case
        when len({{ items }}) > 0
            and list_sort(list_transform({{ items }}, lambda list_entry: coalesce(list_entry.rank, 0)))
            != range(1, len({{ items }}) + 1)
            then 1
        else 0
    end
{%- endmacro %}


{#- exposure_list_out_of_range_count(items): the items with a propensity, logging_propensity or
    target_propensity present and <= 0 or > 1 (0 for a null list). -#}
{% macro exposure_list_out_of_range_count(items) -%}
    {{ return(adapter.dispatch('exposure_list_out_of_range_count', 'recsys_eval')(items)) }}
{%- endmacro %}

{% macro default__exposure_list_out_of_range_count(items) -%}
    coalesce(size(filter(
        {{ items }},
        list_entry -> coalesce(list_entry.propensity <= 0 or list_entry.propensity > 1, false)
            or coalesce(list_entry.logging_propensity <= 0 or list_entry.logging_propensity > 1, false)
            or coalesce(list_entry.target_propensity <= 0 or list_entry.target_propensity > 1, false)
    )), 0)
{%- endmacro %}

{% macro spark__exposure_list_out_of_range_count(items) -%}
    case when {{ items }} is null then 0 else {{ recsys_eval.default__exposure_list_out_of_range_count(items) }} end
{%- endmacro %}

{% macro duckdb__exposure_list_out_of_range_count(items) -%}
    coalesce(len(list_filter(
        {{ items }},
        lambda list_entry: coalesce(list_entry.propensity <= 0 or list_entry.propensity > 1, false)
        or coalesce(list_entry.logging_propensity <= 0 or list_entry.logging_propensity > 1, false)
        or coalesce(list_entry.target_propensity <= 0 or list_entry.target_propensity > 1, false)
    )), 0)
{%- endmacro %}


{#- exposure_list_contains_item(items, item_id): true when item_id is the item_id (a missing one
    read as '') of some entry of the list; false for a null list. -#}
{% macro exposure_list_contains_item(items, item_id) -%}
    {{ return(adapter.dispatch('exposure_list_contains_item', 'recsys_eval')(items, item_id)) }}
{%- endmacro %}

{% macro default__exposure_list_contains_item(items, item_id) -%}
    coalesce(exists({{ items }}, list_entry -> coalesce(list_entry.item_id, '') = {{ item_id }}), false)
{%- endmacro %}

{% macro duckdb__exposure_list_contains_item(items, item_id) -%}
    coalesce(list_contains(list_transform({{ items }}, lambda list_entry: coalesce(list_entry.item_id, '')), {{ item_id }}), false)
{%- endmacro %}
