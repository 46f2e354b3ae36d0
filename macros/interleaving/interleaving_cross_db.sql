{#-
    Array helpers of the interleaving simulation (the picking walk keeps the placed items in an
    array). Engine-specific: DuckDB list functions with `lambda x:`, Spark higher-order functions
    with `x ->`. No portable default (other engines must add an implementation).
-#}

{#- array_first_not_in(array_expression, excluded_expression): the first element of an array of
    strings that is not in `excluded` (a team's next pick: its first item not already placed), null
    when there is none. -#}
{% macro array_first_not_in(array_expression, excluded_expression) -%}
    {{ return(adapter.dispatch('array_first_not_in', 'recsys_eval')(array_expression, excluded_expression)) }}
{%- endmacro %}

{% macro default__array_first_not_in(array_expression, excluded_expression) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.array_first_not_in has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__array_first_not_in(array_expression, excluded_expression) -%}
    list_filter({{ array_expression }}, lambda candidate: not list_contains({{ excluded_expression }}, candidate))[1]
{%- endmacro %}

{% macro spark__array_first_not_in(array_expression, excluded_expression) -%}
    try_element_at(filter({{ array_expression }}, candidate -> not array_contains({{ excluded_expression }}, candidate)), 1)
{%- endmacro %}


{#- empty_string_array(): an empty array of strings (typed, so it can be appended to). -#}
{% macro empty_string_array() -%}
    {{ return(adapter.dispatch('empty_string_array', 'recsys_eval')()) }}
{%- endmacro %}

{% macro default__empty_string_array() -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.empty_string_array has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__empty_string_array() -%}
    cast([] as varchar[])
{%- endmacro %}

{% macro spark__empty_string_array() -%}
    cast(array() as array<string>)
{%- endmacro %}


{#- array_append_element(array_expression, element_expression): the array with one more element at
    the end. DuckDB list_append, Spark array_append (3.4+). -#}
{% macro array_append_element(array_expression, element_expression) -%}
    {{ return(adapter.dispatch('array_append_element', 'recsys_eval')(array_expression, element_expression)) }}
{%- endmacro %}

{% macro default__array_append_element(array_expression, element_expression) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.array_append_element has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__array_append_element(array_expression, element_expression) -%}
    list_append({{ array_expression }}, {{ element_expression }})
{%- endmacro %}

{% macro spark__array_append_element(array_expression, element_expression) -%}
    array_append({{ array_expression }}, {{ element_expression }})
{%- endmacro %}


{#- array_prefix(array_expression, length_expression): the first `length` elements (all of them when
    the array is shorter). DuckDB list_slice (1-based, inclusive), Spark slice(array, 1, length). -#}
{% macro array_prefix(array_expression, length_expression) -%}
    {{ return(adapter.dispatch('array_prefix', 'recsys_eval')(array_expression, length_expression)) }}
{%- endmacro %}

{% macro default__array_prefix(array_expression, length_expression) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.array_prefix has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__array_prefix(array_expression, length_expression) -%}
    list_slice({{ array_expression }}, 1, {{ length_expression }})
{%- endmacro %}

{% macro spark__array_prefix(array_expression, length_expression) -%}
    slice({{ array_expression }}, 1, {{ length_expression }})
{%- endmacro %}


{#- integer_sequence(upper_expression): the array [0, 1, ..., upper] of integers (empty below 0). Used
    to enumerate binomial outcomes for the exact sign test. DuckDB range(), Spark sequence(). -#}
{% macro integer_sequence(upper_expression) -%}
    {{ return(adapter.dispatch('integer_sequence', 'recsys_eval')(upper_expression)) }}
{%- endmacro %}

{% macro default__integer_sequence(upper_expression) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.integer_sequence has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__integer_sequence(upper_expression) -%}
    range(0, cast({{ upper_expression }} as bigint) + 1)
{%- endmacro %}

{% macro spark__integer_sequence(upper_expression) -%}
    case
        when {{ upper_expression }} >= 0 then sequence(cast(0 as bigint), cast({{ upper_expression }} as bigint))
        else cast(array() as array<bigint>)
    end
{%- endmacro %}


{#- parse_interleaved_items_json(json_column): JSON text of an interleaved_exposure.v1 `items` array
    -> array of struct(item_id string, rank bigint, team string), the shape of
    raw.interleaved_exposures.items. Used by the seed base model only. -#}
{% macro parse_interleaved_items_json(json_column) -%}
    {{ return(adapter.dispatch('parse_interleaved_items_json', 'recsys_eval')(json_column)) }}
{%- endmacro %}

{% macro default__parse_interleaved_items_json(json_column) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.parse_interleaved_items_json has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__parse_interleaved_items_json(json_column) -%}
    from_json({{ json_column }}, '[{"item_id": "VARCHAR", "rank": "BIGINT", "team": "VARCHAR"}]')
{%- endmacro %}

{% macro spark__parse_interleaved_items_json(json_column) -%}
    from_json({{ json_column }}, 'array<struct<item_id: string, rank: bigint, team: string>>')
{%- endmacro %}


{#- arg_min_value(value_expression, order_expression): the value of the row with the smallest
    order_expression in a group (an aggregate). DuckDB and Spark both call it min_by; engines
    without it must add an implementation. -#}
{% macro arg_min_value(value_expression, order_expression) -%}
    {{ return(adapter.dispatch('arg_min_value', 'recsys_eval')(value_expression, order_expression)) }}
{%- endmacro %}

{% macro default__arg_min_value(value_expression, order_expression) -%}
    min_by({{ value_expression }}, {{ order_expression }})
{%- endmacro %}


{#-
    Logged-list helpers: the facts of one interleaved_exposure.v1 list (array of struct(item_id,
    rank, team)) computed on the array itself, so no model explodes the lists into item rows and
    aggregates them back. The list semantics are those of the item rows (docs/interleaving.md): an
    item is shown once however often it is logged (a missing item_id is ''); its slot is its
    smallest logged rank and its team (upper-cased, '' when missing) the one of its first entry in
    (rank, array position) order; an item whose ranks are all missing has neither.
    DuckDB: list functions with `lambda x:`; default: Spark's higher-order functions (`x ->`).
-#}

{#- interleaving_item_ids(items_expression): the item_id of every entry ('' when missing), in list
    order. -#}
{% macro interleaving_item_ids(items_expression) -%}
    {{ return(adapter.dispatch('interleaving_item_ids', 'recsys_eval')(items_expression)) }}
{%- endmacro %}

{% macro default__interleaving_item_ids(items_expression) -%}
    transform({{ items_expression }}, shown_entry -> coalesce(shown_entry.item_id, ''))
{%- endmacro %}

{% macro duckdb__interleaving_item_ids(items_expression) -%}
    list_transform({{ items_expression }}, lambda shown_entry: coalesce(shown_entry.item_id, ''))
{%- endmacro %}


{#- array_distinct_count(array_expression): the number of distinct elements of an array without
    nulls (0 for a null array), as the elements found first at their own position: a native
    search per element, much cheaper on DuckDB than list_distinct's hashing. -#}
{% macro array_distinct_count(array_expression) -%}
    {{ return(adapter.dispatch('array_distinct_count', 'recsys_eval')(array_expression)) }}
{%- endmacro %}

{% macro default__array_distinct_count(array_expression) -%}
    case
        when {{ array_expression }} is null then 0
        else size(filter(
            {{ array_expression }},
            (array_element, element_index) -> array_position({{ array_expression }}, array_element) = element_index + 1
        ))
    end
{%- endmacro %}

{% macro duckdb__array_distinct_count(array_expression) -%}
    coalesce(len(list_filter(
        {{ array_expression }},
        lambda array_element, element_index: list_position({{ array_expression }}, array_element) = element_index
    )), 0)
{%- endmacro %}


{#- interleaving_team_item_count(items_expression, team, items_unique_expression): the shown items
    credited to `team` ('A' or 'B'), i.e. the entries with a rank and that team that come first for
    their item in (rank, array position) order. items_unique_expression is a boolean expression,
    true when no item_id repeats in the list: then every ranked entry comes first for its item and
    the pairwise check is skipped. 0 for a null list. -#}
{% macro interleaving_team_item_count(items_expression, team, items_unique_expression) -%}
    {{ return(adapter.dispatch('interleaving_team_item_count', 'recsys_eval')(
        items_expression, team, items_unique_expression)) }}
{%- endmacro %}

{% macro default__interleaving_team_item_count(items_expression, team, items_unique_expression) -%}
    case
        when {{ items_expression }} is null then 0
        when {{ items_unique_expression }} then size(filter(
            {{ items_expression }},
            shown_entry -> shown_entry.rank is not null
                and upper(coalesce(shown_entry.team, '')) = {{ recsys_eval.string_literal(team) }}
        ))
        else size(filter(
            {{ items_expression }},
            (shown_entry, entry_index) -> shown_entry.rank is not null
                and upper(coalesce(shown_entry.team, '')) = {{ recsys_eval.string_literal(team) }}
                and size(filter(
                    {{ items_expression }},
                    (other_entry, other_index) -> coalesce(other_entry.item_id, '') = coalesce(shown_entry.item_id, '')
                        and (
                            other_entry.rank < shown_entry.rank
                            or (other_entry.rank = shown_entry.rank and other_index < entry_index)
                        )
                )) = 0
        ))
    end
{%- endmacro %}

{% macro duckdb__interleaving_team_item_count(items_expression, team, items_unique_expression) -%}
    coalesce(case
        when {{ items_unique_expression }} then len(list_filter(
            {{ items_expression }},
            lambda shown_entry: shown_entry.rank is not null
            and upper(coalesce(shown_entry.team, '')) = {{ recsys_eval.string_literal(team) }}
        ))
        else len(list_filter(
            {{ items_expression }},
            lambda shown_entry, entry_index: shown_entry.rank is not null
            and upper(coalesce(shown_entry.team, '')) = {{ recsys_eval.string_literal(team) }}
            and len(list_filter(
                {{ items_expression }},
                lambda other_entry, other_index: coalesce(other_entry.item_id, '') = coalesce(shown_entry.item_id, '')
                and (
                    other_entry.rank < shown_entry.rank
                    or (other_entry.rank = shown_entry.rank and other_index < entry_index)
                )
            )) = 0
        ))
    end, 0)
{%- endmacro %}


{#- interleaving_min_rank(items_expression): the smallest rank of the entries (null when none has
    one): a list's first slot, or an item's slot when the entries are the item's. -#}
{% macro interleaving_min_rank(items_expression) -%}
    {{ return(adapter.dispatch('interleaving_min_rank', 'recsys_eval')(items_expression)) }}
{%- endmacro %}

{% macro default__interleaving_min_rank(items_expression) -%}
    array_min(transform({{ items_expression }}, shown_entry -> shown_entry.rank))
{%- endmacro %}

{% macro duckdb__interleaving_min_rank(items_expression) -%}
    list_min(list_transform({{ items_expression }}, lambda shown_entry: shown_entry.rank))
{%- endmacro %}


{#- interleaving_team_at_rank(items_expression, rank_expression): the team (upper-cased, '' when
    missing) of the first entry in array order whose rank is rank_expression (pass the entries'
    interleaving_min_rank: the team of the first slot, or an item's team); null when
    rank_expression is null. -#}
{% macro interleaving_team_at_rank(items_expression, rank_expression) -%}
    {{ return(adapter.dispatch('interleaving_team_at_rank', 'recsys_eval')(items_expression, rank_expression)) }}
{%- endmacro %}

{% macro default__interleaving_team_at_rank(items_expression, rank_expression) -%}
    case
        when {{ rank_expression }} is not null then upper(coalesce(try_element_at(
            {{ items_expression }},
            cast(array_position(
                transform({{ items_expression }}, shown_entry -> shown_entry.rank), {{ rank_expression }}
            ) as int)
        ).team, ''))
    end
{%- endmacro %}

{% macro duckdb__interleaving_team_at_rank(items_expression, rank_expression) -%}
    case
        when {{ rank_expression }} is not null then upper(coalesce(struct_extract({{ items_expression }}[
            list_position(list_transform({{ items_expression }}, lambda shown_entry: shown_entry.rank), {{ rank_expression }})
        ], 'team'), ''))
    end
{%- endmacro %}


{#- interleaving_item_entries(items_expression, item_id_expression): the entries of one item
    (item_id_expression is compared with the entries' item_id, '' when missing), in list order;
    empty when the list does not show it. -#}
{% macro interleaving_item_entries(items_expression, item_id_expression) -%}
    {{ return(adapter.dispatch('interleaving_item_entries', 'recsys_eval')(items_expression, item_id_expression)) }}
{%- endmacro %}

{% macro default__interleaving_item_entries(items_expression, item_id_expression) -%}
    filter({{ items_expression }}, shown_entry -> coalesce(shown_entry.item_id, '') = {{ item_id_expression }})
{%- endmacro %}

{% macro duckdb__interleaving_item_entries(items_expression, item_id_expression) -%}
    list_filter({{ items_expression }}, lambda shown_entry: coalesce(shown_entry.item_id, '') = {{ item_id_expression }})
{%- endmacro %}
