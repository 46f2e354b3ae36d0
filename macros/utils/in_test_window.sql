{#-
    in_test_window(timestamp_column): predicate for the offline time split (reference §4.7):
    true when the column lies inside [recsys_eval__test_window_start, recsys_eval__test_window_end],
    both bounds inclusive; an unset bound is open; both unset -> `1 = 1` (rows with a null ts are
    kept only then). Bounds are RFC 3339 strings cast to the target's timestamp type.
-#}
{% macro in_test_window(timestamp_column) -%}
    {%- set window_start = recsys_eval.config_var('recsys_eval__test_window_start', none) -%}
    {%- set window_end = recsys_eval.config_var('recsys_eval__test_window_end', none) -%}
    {%- set predicates = [] -%}
    {%- if window_start -%}
        {%- do predicates.append(timestamp_column ~ " >= cast(" ~ recsys_eval.string_literal(window_start)
            ~ " as " ~ dbt.type_timestamp() ~ ")") -%}
    {%- endif -%}
    {%- if window_end -%}
        {%- do predicates.append(timestamp_column ~ " <= cast(" ~ recsys_eval.string_literal(window_end)
            ~ " as " ~ dbt.type_timestamp() ~ ")") -%}
    {%- endif -%}
    {%- if predicates | length == 0 -%}
        1 = 1
    {%- else -%}
        {{ predicates | join(' and ') }}
    {%- endif -%}
{%- endmacro %}
