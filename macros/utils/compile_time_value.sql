{#-
    compile_time_value(model_ref, select_sql): the one value `select_sql` returns, read at compile
    time from a model that is already built (none while it is not: parse, lint, docs before a
    build), and `marker`, a SQL comment that records the query and the value in the compiled code.

    A model whose SQL depends on the data (the simulated interleaving unrolls its walk to the
    longest list) reads it only through this macro. The CLI's plan replay (recsys_eval.plan) may
    then replay such a model: before running it, it runs the recorded query again and replays only
    when the value is the same (else the run builds with dbt). The model must render {{ marker }}.
    The value is compared as text, so the query should return an integer or a string.
-#}
{% macro compile_time_value(model_ref, select_sql) -%}
    {%- set relation = load_relation(model_ref) if execute else none -%}
    {%- if relation is none -%}
        {{ return({'value': none, 'marker': ''}) }}
    {%- endif -%}
    {%- set value = run_query(select_sql).columns[0].values()[0] -%}
    {%- set text = none if value is none else (value | string) -%}
    {%- set record = tojson({'sql': select_sql, 'value': text}) | replace('*/', '*\\/') -%}
    {{ return({'value': value, 'marker': '/* recsys_eval.plan_guard ' ~ record ~ ' */'}) }}
{%- endmacro %}
