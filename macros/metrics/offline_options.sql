{#-
    Offline evaluation options read from vars and validated at compile time (not SQL, not dispatched).
-#}

{#-
    offline_dialect(): var recsys_eval__offline_dialect, lower-cased: 'reference' (default: the
    reference's formulas, §4.4) or 'trec' (trec_eval's: precision over k, AP over |R|, duplicate and
    empty item ids dropped from the ranking, cases without a relevant item or without a ranked item
    not evaluated).
-#}
{% macro offline_dialect() -%}
    {%- set dialect = (recsys_eval.config_var('recsys_eval__offline_dialect', 'reference') or 'reference') | string | trim | lower -%}
    {%- if dialect not in ['reference', 'trec'] -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_dialect must be 'reference' or 'trec', got: " ~ dialect) }}
    {%- endif -%}
    {{ return(dialect) }}
{%- endmacro %}


{#-
    offline_relevance(): var recsys_eval__offline_relevance as {grade, gains}.
    grade 'binary' (default): every clicked or converted item has gain 1.
    grade 'event': gain = gains[event_type] (click and conversion default to 1; any number >= 0).
    grade 'value': gain = the outcome's value when positive, else 0.
    An item's gain is the largest gain of its outcomes; items with gain > 0 are relevant (R).
-#}
{% macro offline_relevance() -%}
    {%- set configured = recsys_eval.config_var('recsys_eval__offline_relevance', {}) or {} -%}
    {%- if configured is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_relevance must be a mapping {grade, gains}, got: " ~ configured) }}
    {%- endif -%}
    {%- for key in configured -%}
        {%- if key not in ['grade', 'gains'] -%}
            {{ exceptions.raise_compiler_error("var recsys_eval__offline_relevance: unknown key " ~ key) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set grade = (configured.get('grade') or 'binary') | string | trim | lower -%}
    {%- if grade not in ['binary', 'event', 'value'] -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_relevance.grade must be binary, event or value, got: " ~ grade) }}
    {%- endif -%}
    {%- set gains = {'click': 1, 'conversion': 1} -%}
    {%- set configured_gains = configured.get('gains') or {} -%}
    {%- if configured_gains is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_relevance.gains must map event types to numbers, got: " ~ configured_gains) }}
    {%- endif -%}
    {%- for event_type, gain in configured_gains.items() -%}
        {%- if event_type not in ['click', 'conversion'] -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__offline_relevance.gains: unknown event type " ~ event_type
                ~ " (click or conversion)") }}
        {%- endif -%}
        {%- if gain is boolean or gain is not number or gain < 0 -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__offline_relevance.gains." ~ event_type ~ " must be a number >= 0, got: " ~ gain) }}
        {%- endif -%}
        {%- do gains.update({event_type: gain}) -%}
    {%- endfor -%}
    {{ return({'grade': grade, 'gains': gains}) }}
{%- endmacro %}


{#-
    offline_outcome_gain(event_type, value): the gain expression of one click/conversion outcome
    under offline_relevance() (a double).
-#}
{% macro offline_outcome_gain(event_type, value) -%}
    {%- set relevance = recsys_eval.offline_relevance() -%}
    {%- if relevance.grade == 'binary' -%}
    cast(1 as {{ recsys_eval.type_double() }})
    {%- elif relevance.grade == 'event' -%}
    cast(
        case {{ event_type }}
            when 'click' then {{ relevance.gains.click | float }}
            when 'conversion' then {{ relevance.gains.conversion | float }}
            else 0
        end as {{ recsys_eval.type_double() }}
    )
    {%- else -%}
    cast(case when {{ value }} > 0 then {{ value }} else 0 end as {{ recsys_eval.type_double() }})
    {%- endif -%}
{%- endmacro %}


{#-
    offline_bootstrap(): var recsys_eval__offline_bootstrap as {enabled, iterations, seed, ci_level}
    with the reference's normalisation (§4.6): iterations <= 0 -> 200, seed 0 -> 42,
    ci_level outside (0, 1) -> 0.95. Disabled by default.
-#}
{% macro offline_bootstrap() -%}
    {%- set configured = recsys_eval.config_var('recsys_eval__offline_bootstrap', {}) or {} -%}
    {%- if configured is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__offline_bootstrap must be a mapping {enabled, iterations, seed, ci_level}, got: "
            ~ configured) }}
    {%- endif -%}
    {%- for key in configured -%}
        {%- if key not in ['enabled', 'iterations', 'seed', 'ci_level'] -%}
            {{ exceptions.raise_compiler_error("var recsys_eval__offline_bootstrap: unknown key " ~ key) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set enabled = configured.get('enabled', false) -%}
    {%- set iterations = configured.get('iterations', 200) -%}
    {%- set seed = configured.get('seed', 42) -%}
    {%- set level = configured.get('ci_level', 0.95) -%}
    {%- if enabled is not boolean -%}
        {{ exceptions.raise_compiler_error("var recsys_eval__offline_bootstrap.enabled must be true or false") }}
    {%- endif -%}
    {%- for name, number in [('iterations', iterations), ('seed', seed)] -%}
        {%- if number is boolean or number is not number or number != (number | int) -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__offline_bootstrap." ~ name ~ " must be an integer, got: " ~ number) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if level is boolean or level is not number -%}
        {{ exceptions.raise_compiler_error("var recsys_eval__offline_bootstrap.ci_level must be a number") }}
    {%- endif -%}
    {{ return({
        'enabled': enabled,
        'iterations': (iterations | int) if (iterations | int) > 0 else 200,
        'seed': (seed | int) if (seed | int) != 0 else 42,
        'ci_level': (level | float) if 0 < level < 1 else 0.95,
    }) }}
{%- endmacro %}
