{#-
    parse_exposure_items_json(json_column): JSON text of an exposure's `items` array ->
    array of struct(item_id string, rank bigint, propensity double, logging_propensity double,
    target_propensity double), the shape of raw.exposures.items. Missing fields become null and
    extra item keys are dropped, as in the loader. Used by the seed base models only.
    DuckDB: from_json with a JSON structure. Spark: from_json with a DDL schema.
-#}
{% macro parse_exposure_items_json(json_column) -%}
    {{ return(adapter.dispatch('parse_exposure_items_json', 'recsys_eval')(json_column)) }}
{%- endmacro %}

{% macro default__parse_exposure_items_json(json_column) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.parse_exposure_items_json has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__parse_exposure_items_json(json_column) -%}
    from_json(
        {{ json_column }},
        '[{"item_id": "VARCHAR", "rank": "BIGINT", "propensity": "DOUBLE", "logging_propensity": "DOUBLE", "target_propensity": "DOUBLE"}]'
    )
{%- endmacro %}

{% macro spark__parse_exposure_items_json(json_column) -%}
    from_json(
        {{ json_column }},
        'array<struct<item_id: string, rank: bigint, propensity: double, logging_propensity: double, target_propensity: double>>'
    )
{%- endmacro %}
