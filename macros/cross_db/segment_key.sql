{#-
    segment_key(context_column, keys): the reference's segment key (§2.7) as a SQL expression.
      - no keys -> the literal '__all__';
      - otherwise `key=value` per configured key (value '' when the key is absent), sorted
        lexicographically and joined with '|'; a duplicated key repeats its part.
    The parts are sorted at compile time: two parts compare like their `key=` prefixes, because the
    first difference lies inside the key or at the '=' of the shorter key (this also orders keys
    that are prefixes of others: 'a.b=' < 'a=' < 'a_b='). That only fails when a key contains '='
    (the value would then decide), so such keys are rejected. The sort is case-sensitive by code
    point, i.e. byte order for UTF-8, like the reference's Go sort.Strings.
    Portable: built from recsys_eval.map_lookup, recsys_eval.string_literal and dbt.concat.
-#}
{% macro segment_key(context_column, keys) -%}
    {{ return(adapter.dispatch('segment_key', 'recsys_eval')(context_column, keys)) }}
{%- endmacro %}

{% macro default__segment_key(context_column, keys) -%}
    {%- set key_list = recsys_eval.as_key_list(keys) -%}
    {%- if key_list | length == 0 -%}
        '__all__'
    {%- else -%}
        {%- set parts = [] -%}
        {%- set prefixes = [] -%}
        {%- for key in key_list -%}{%- do prefixes.append(key ~ '=') -%}{%- endfor -%}
        {%- for prefix in prefixes | sort(case_sensitive=true) -%}
            {%- set key = prefix[:-1] -%}
            {%- if '=' in key -%}
                {{ exceptions.raise_compiler_error("recsys_eval.segment_key: slice key '" ~ key ~ "' contains '='") }}
            {%- endif -%}
            {%- if not loop.first -%}{%- do parts.append("'|'") -%}{%- endif -%}
            {%- do parts.append(recsys_eval.string_literal(key ~ '=')) -%}
            {%- do parts.append(
                "coalesce(" ~ recsys_eval.map_lookup(context_column, recsys_eval.string_literal(key)) ~ ", '')"
            ) -%}
        {%- endfor -%}
        {{ dbt.concat(parts) }}
    {%- endif -%}
{%- endmacro %}
