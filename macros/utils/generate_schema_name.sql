{#-
    generate_schema_name(custom_schema_name, node): this project's models in their own schemas
    (recsys_eval_staging, recsys_eval_marts; dbt_project.yml) named as they are, not prefixed with
    the target's schema, when recsys_eval is the root project (the CLI, scripts/dbt_build.sh). dbt
    only uses the root project's generate_schema_name, so a host project that installs the package
    keeps its own macro (or dbt's default) for every node, the package's included; the node and
    project checks keep any other node on dbt's default here too. Not SQL, so not dispatched.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is not none and node.package_name == 'recsys_eval' and project_name == 'recsys_eval' -%}
        {{ custom_schema_name | trim }}
    {%- else -%}
        {{ default__generate_schema_name(custom_schema_name, node) }}
    {%- endif -%}
{%- endmacro %}
