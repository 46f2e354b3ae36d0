{#-
    using_source(name): whether the models of an optional source (assignments; rankers, which also
    covers the logged interleaved lists) are built: var recsys_eval__using_<name> when set, else
    true on the bundled seeds and false on raw tables. A host project that installs the package
    (raw tables) therefore builds no experiment or interleaving model unless it turns them on; the
    CLI passes both vars explicitly. YAML configs inline the same expression (no macros there).
-#}
{% macro using_source(name) -%}
    {%- set value = var('recsys_eval__using_' ~ name, none) -%}
    {%- if value is none -%}
        {{ return(var('recsys_eval__source', 'seeds') == 'seeds') }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}
