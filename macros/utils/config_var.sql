{#-
    config_var(name, default): var(name, default) with the CLI's text encoding undone.

    dbt renders a string var as a Jinja template when a model reads it, so a config value such as
    `{{ run_query('drop table ...') }}` would run. The CLI therefore never passes a user string
    that could template: every string outside [A-Za-z0-9_.:- ] (at any depth, mapping keys too)
    reaches dbt as `recsys_eval__text:` followed by six hex digits per code point
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
        {%- set digits = value[prefix | length:] -%}
        {%- if digits | length % 6 != 0 -%}
            {{ exceptions.raise_compiler_error("malformed encoded var text (" ~ digits | length ~ " hex digits)") }}
        {%- endif -%}
        {%- set chars = [] -%}
        {%- for start in range(0, digits | length, 6) -%}
            {%- do chars.append('%c' | format(digits[start:start + 6] | int(base=16))) -%}
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
