{#-
    Engine-specific pieces of the experiment models (adapter.dispatch, namespace recsys_eval).

    experiment_epoch_microseconds(timestamp_expression): microseconds since 1970-01-01 UTC as a
    bigint (throughput spans keep sub-second precision, like the reference's Go durations).
    DuckDB epoch_us(); Spark unix_micros(); no portable default (Postgres `extract(epoch ...)`,
    BigQuery unix_micros, Snowflake date_part(epoch_microsecond, ...)).
-#}
{% macro experiment_epoch_microseconds(timestamp_expression) -%}
    {{ return(adapter.dispatch('experiment_epoch_microseconds', 'recsys_eval')(timestamp_expression)) }}
{%- endmacro %}

{% macro default__experiment_epoch_microseconds(timestamp_expression) -%}
    {{ exceptions.raise_compiler_error(
        "recsys_eval.experiment_epoch_microseconds has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__experiment_epoch_microseconds(timestamp_expression) -%}
    epoch_us({{ timestamp_expression }})
{%- endmacro %}

{% macro spark__experiment_epoch_microseconds(timestamp_expression) -%}
    unix_micros({{ timestamp_expression }})
{%- endmacro %}


{#-
    experiment_parse_double(text_expression): a context string as a finite double, null when it is
    null, not a number, NaN or infinite (the CUPED covariate, reference §5.7). Default try_cast
    (DuckDB, Spark >= 3.2, Trino, Snowflake); it never raises, also under Spark's ANSI mode. The
    range test drops NaN and +-Infinity (NaN sorts above every double on DuckDB and Spark).
    Unlike Go's strconv.ParseFloat, engines accept surrounding blanks.
-#}
{% macro experiment_parse_double(text_expression) -%}
    {{ return(adapter.dispatch('experiment_parse_double', 'recsys_eval')(text_expression)) }}
{%- endmacro %}

{% macro default__experiment_parse_double(text_expression) -%}
    case
        when
            try_cast({{ text_expression }} as {{ recsys_eval.type_double() }})
            between -1.7976931348623157e308 and 1.7976931348623157e308
            then try_cast({{ text_expression }} as {{ recsys_eval.type_double() }})
    end
{%- endmacro %}
