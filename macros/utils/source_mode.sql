{#-
    source_mode(): the validated value of var recsys_eval__source ('seeds' or 'raw').
    Any other value fails compilation instead of silently reading the wrong tables.
-#}
{% macro source_mode() -%}
    {%- set mode = recsys_eval.config_var('recsys_eval__source', 'seeds') -%}
    {%- if mode not in ['seeds', 'raw'] -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__source must be 'seeds' or 'raw', got '" ~ mode ~ "'") }}
    {%- endif -%}
    {{ return(mode) }}
{%- endmacro %}
