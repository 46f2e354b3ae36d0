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
