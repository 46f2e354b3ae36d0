{#-
    distinct_set_key(element_expression): an aggregate: one text that is the same for two groups
    exactly when they hold the same set of distinct element_expression values (strings). The
    elements are sorted and joined with ';' (the caller's elements must not be ambiguous when
    joined, e.g. length-prefixed). Used as a grouping key: groups with the same key are the same.
    DuckDB: string_agg(distinct ... order by ...); default (Spark): array_join of the sorted
    collect_set.
-#}
{% macro distinct_set_key(element_expression) -%}
    {{ return(adapter.dispatch('distinct_set_key', 'recsys_eval')(element_expression)) }}
{%- endmacro %}

{% macro default__distinct_set_key(element_expression) -%}
    array_join(array_sort(collect_set({{ element_expression }})), ';')
{%- endmacro %}

{% macro duckdb__distinct_set_key(element_expression) -%}
    string_agg(distinct {{ element_expression }}, ';' order by {{ element_expression }})
{%- endmacro %}
