{#-
    as_key_list(value): normalise a slice-key var to a list of strings. Accepts a list, a single
    string (one key) or none/empty (no keys). Not SQL, so not dispatched.
-#}
{% macro as_key_list(value) -%}
    {%- if value is none or value == '' -%}
        {{ return([]) }}
    {%- elif value is string -%}
        {{ return([value]) }}
    {%- else -%}
        {{ return(value | map('string') | list) }}
    {%- endif -%}
{%- endmacro %}
