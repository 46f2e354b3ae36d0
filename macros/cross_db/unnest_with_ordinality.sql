{#-
    unnest_with_ordinality(relation, array_column, element_alias, position_alias):
    a complete `select` that returns every column of `relation` plus one row per array element,
    the element as `element_alias` and its 1-based array position as `position_alias`.
    Rows with a null or empty array produce no rows (inner semantics).
    DuckDB: a lateral subquery zipping unnest() with generate_subscripts().
    Spark: lateral view posexplode() (0-based, shifted to 1-based).
    No portable default (BigQuery `with offset`, Snowflake `flatten`, Trino `with ordinality`).
-#}
{% macro unnest_with_ordinality(relation, array_column, element_alias, position_alias) -%}
    {{ return(adapter.dispatch('unnest_with_ordinality', 'recsys_eval')(
        relation, array_column, element_alias, position_alias)) }}
{%- endmacro %}

{% macro default__unnest_with_ordinality(relation, array_column, element_alias, position_alias) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.unnest_with_ordinality has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__unnest_with_ordinality(relation, array_column, element_alias, position_alias) -%}
    select
        src.*,
        exploded.{{ element_alias }},
        exploded.{{ position_alias }}
    from {{ relation }} as src
    cross join lateral (
        select
            unnest(src.{{ array_column }}) as {{ element_alias }},
            generate_subscripts(src.{{ array_column }}, 1) as {{ position_alias }}
    ) as exploded
{%- endmacro %}

{% macro spark__unnest_with_ordinality(relation, array_column, element_alias, position_alias) -%}
    select
        src.*,
        exploded.{{ element_alias }},
        exploded.zero_based_position + 1 as {{ position_alias }}
    from {{ relation }} as src
    lateral view posexplode(src.{{ array_column }}) exploded as zero_based_position, {{ element_alias }}
{%- endmacro %}
