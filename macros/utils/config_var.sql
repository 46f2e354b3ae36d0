{#-
    config_var(name, default): var(name, default) with the CLI's text encoding undone.

    dbt renders a string var as a Jinja template when a model reads it, so a config value such as
    `{{ run_query('drop table ...') }}` would run. The CLI therefore never passes a user string
    that could template: every string outside [A-Za-z0-9_.:- ] (at any depth, mapping keys too)
    reaches dbt as `recsys_eval__text:` followed by its characters, ASCII letters and digits as
    they are and any other character as `_` and six hex digits of its code point
    (recsys_eval.dbt_vars.encode), which nothing renders. This macro decodes it back to the
    plain text, which the models then only ever quote (string_literal) or compare; it is never
    rendered again. Values that are not encoded (a dbt user's own vars) come back unchanged.
    Not SQL, so not dispatched.
-#}
{% macro config_var(name, default) -%}
    {{ return(recsys_eval.decode_config_value(var(name, default))) }}
{%- endmacro %}

{% macro decode_config_value(value) -%}
    {%- set prefix = 'recsys_eval__text:' -%}
    {%- if value is string -%}
        {%- if not value.startswith(prefix) -%}
            {{ return(value) }}
        {%- endif -%}
        {%- set body = value[prefix | length:] -%}
        {%- set state = namespace(skip=0) -%}
        {%- set chars = [] -%}
        {%- for position in range(body | length) -%}
            {%- if state.skip > 0 -%}
                {%- set state.skip = state.skip - 1 -%}
            {%- elif body[position] == '_' -%}
                {%- set code = body[position + 1:position + 7] -%}
                {%- if code | length != 6 -%}
                    {{ exceptions.raise_compiler_error("malformed encoded var text at character " ~ position) }}
                {%- endif -%}
                {%- do chars.append('%c' | format(code | int(base=16))) -%}
                {%- set state.skip = 6 -%}
            {%- else -%}
                {%- do chars.append(body[position]) -%}
            {%- endif -%}
        {%- endfor -%}
        {{ return(chars | join('')) }}
    {%- elif value is mapping -%}
        {%- set decoded = {} -%}
        {%- for key, item in value.items() -%}
            {%- do decoded.update({recsys_eval.decode_config_value(key): recsys_eval.decode_config_value(item)}) -%}
        {%- endfor -%}
        {{ return(decoded) }}
    {%- elif value is iterable -%}
        {%- set decoded = [] -%}
        {%- for item in value -%}
            {%- do decoded.append(recsys_eval.decode_config_value(item)) -%}
        {%- endfor -%}
        {{ return(decoded) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}
