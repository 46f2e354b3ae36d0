{#-
    segment_key(context_column, keys): the reference's segment key (§2.7) as a SQL expression.
      - no keys -> the literal '__all__';
      - otherwise `key=value` per configured key (value '' when the key is absent), sorted
        lexicographically and joined with '|'; a duplicated key repeats its part.
    Values are escaped (segment_value): '\' -> '\\', '|' -> '\|', '=' -> '\=', so a value holding
    '|' or '=' can never read as another part and distinct contexts never share a key; a value
    without those characters is written as is (the reference's keys). Keys are escaped the same way
    at compile time (CLI slice keys are identifiers, which it leaves as they are).
    The parts are sorted at compile time: two parts compare like their `key=` prefixes, because the
    first difference lies inside the key or at the '=' of the shorter key (this also orders keys
    that are prefixes of others: 'a.b=' < 'a=' < 'a_b='). That only fails when a key contains '='
    (the value would then decide), so such keys are rejected. The sort is case-sensitive by code
    point, i.e. byte order for UTF-8, like the reference's Go sort.Strings.
    Portable: built from recsys_eval.map_lookup, recsys_eval.string_literal, replace (literal, not a
    pattern, on DuckDB and Spark) and dbt.concat.
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
        {%- set slices = [] -%}
        {%- for key in key_list -%}
            {%- if '=' in key -%}
                {{ exceptions.raise_compiler_error("recsys_eval.segment_key: slice key '" ~ key ~ "' contains '='") }}
            {%- endif -%}
            {%- do slices.append({'prefix': recsys_eval.segment_escape(key) ~ '=', 'key': key}) -%}
        {%- endfor -%}
        {%- for slice in slices | sort(case_sensitive=true, attribute='prefix') -%}
            {%- if not loop.first -%}{%- do parts.append("'|'") -%}{%- endif -%}
            {%- do parts.append(recsys_eval.string_literal(slice.prefix)) -%}
            {%- do parts.append(recsys_eval.segment_value(
                "coalesce(" ~ recsys_eval.map_lookup(context_column, recsys_eval.string_literal(slice.key)) ~ ", '')"
            )) -%}
        {%- endfor -%}
        {{ dbt.concat(parts) }}
    {%- endif -%}
{%- endmacro %}

{#- segment_escape(text): a compile-time string escaped as segment_value escapes values. -#}
{% macro segment_escape(text) -%}
    {{- return(text | replace('\\', '\\\\') | replace('|', '\\|') | replace('=', '\\=')) -}}
{%- endmacro %}

{#- segment_value(expression): SQL escaping a string expression for a segment key: the backslash
    first (so the escapes added after it stay single), then '|' and '='. -#}
{% macro segment_value(expression) -%}
    {%- set escaped = namespace(sql=expression) -%}
    {%- for char in ['\\', '|', '='] -%}
        {%- set escaped.sql = 'replace(' ~ escaped.sql ~ ', ' ~ recsys_eval.string_literal(char) ~ ', '
            ~ recsys_eval.string_literal('\\' ~ char) ~ ')' -%}
    {%- endfor -%}
    {{- escaped.sql -}}
{%- endmacro %}
