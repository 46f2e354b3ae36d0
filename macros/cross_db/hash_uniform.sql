{#-
    hash_uniform(key_expression): a deterministic uniform number in [0, 1) from a string key: the first
    52 bits of md5(key) / 2^52. md5 is the same function on every engine, so the same key gives the
    same number on DuckDB and Spark (the bootstrap's portability rests on this).
    Default: hex to integer through a '0x' cast (DuckDB); Spark: conv(hex, 16, 10).
-#}
{% macro hash_uniform(key_expression) -%}
    {{ return(adapter.dispatch('hash_uniform', 'recsys_eval')(key_expression)) }}
{%- endmacro %}

{% macro default__hash_uniform(key_expression) -%}
    (cast(cast(('0x' || substr(md5({{ key_expression }}), 1, 13)) as {{ dbt.type_bigint() }})
        as {{ recsys_eval.type_double() }}) / 4503599627370496.0)
{%- endmacro %}

{% macro spark__hash_uniform(key_expression) -%}
    (cast(cast(conv(substr(md5({{ key_expression }}), 1, 13), 16, 10) as bigint) as double)
        / 4503599627370496.0)
{%- endmacro %}
