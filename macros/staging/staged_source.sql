{#-
    staged_source(table): the select that feeds a staging model, in the raw tables' shape.

    Seeds mode: the base model of the bundled seeds. Raw mode: the source table, with
      * columns renamed by var recsys_eval__<table>_columns ({canonical: their column});
      * ids (request_id, user_id, item_id, experiment_id, variant) cast to strings, so integer ids work;
      * ts read as a timestamp, or as epoch numbers when var recsys_eval__ts_unit is s, ms or us;
      * context as a map(string, string), from a MAP, JSON text or a struct column; absent = null;
      * exposures in one row per shown item (var recsys_eval__exposures_layout: item_rows) grouped
        into the ranked list of their request (request_id, user_id, ts);
      * outcome event types mapped by var recsys_eval__outcome_event_types ({click: [click, tap]});
      * the loader's lineage columns (load_id, load_seq, source_file, line_no) when the table has
        them (the CLI's raw tables: nothing changes), else derived: load_seq 0, source_file the
        table name, line_no a deterministic order (var recsys_eval__<table>_order_by, then ts, then
        every mapped column as the tie-break).
    Every check runs at compile time (adapter.get_columns_in_relation) and fails with the name of
    the missing column and of the var that maps it. Not dispatched: the engine-specific pieces are
    the dispatched macros it calls.
-#}

{% macro staged_source_spec(table) -%}
    {%- set specs = {
        'exposures': {
            'required': ['request_id', 'ts'],
            'columns': {
                'request_id': 'id', 'user_id': 'id', 'ts': 'ts', 'items': 'items', 'context': 'context',
                'latency_ms': 'double', 'error': 'boolean',
            },
        },
        'outcomes': {
            'required': ['request_id', 'item_id', 'event_type', 'ts'],
            'columns': {
                'request_id': 'id', 'user_id': 'id', 'item_id': 'id', 'event_type': 'event_type',
                'value': 'double', 'ts': 'ts',
            },
        },
        'assignments': {
            'required': ['experiment_id', 'variant', 'request_id', 'ts'],
            'columns': {
                'experiment_id': 'id', 'variant': 'id', 'request_id': 'id', 'user_id': 'id', 'ts': 'ts',
                'context': 'context',
            },
        },
        'ranker_a': {
            'required': ['request_id', 'items'],
            'columns': {'request_id': 'id', 'user_id': 'id', 'ts': 'ts', 'items': 'list', 'context': 'context'},
        },
        'ranker_b': {
            'required': ['request_id', 'items'],
            'columns': {'request_id': 'id', 'user_id': 'id', 'ts': 'ts', 'items': 'list', 'context': 'context'},
        },
        'interleaved_exposures': {
            'required': ['request_id', 'items'],
            'columns': {
                'request_id': 'id', 'user_id': 'id', 'ts': 'ts', 'items': 'list', 'algorithm': 'text',
                'context': 'context',
            },
        },
    } -%}
    {{ return(specs[table]) }}
{%- endmacro %}


{% macro staged_source(table) -%}
    {%- if recsys_eval.source_mode() == 'seeds' -%}
select * from {{ ref('base_recsys_eval__' ~ table) }}
    {%- else -%}
        {%- set relation = source('recsys_eval', table) -%}
        {%- if not execute -%}
select * from {{ relation }}
        {%- else -%}
{{ recsys_eval.staged_source_select(table, relation) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{% macro staged_source_select(table, relation) -%}
    {%- set spec = recsys_eval.staged_source_spec(table) -%}
    {%- set columns_var = 'recsys_eval__' ~ table ~ '_columns' -%}
    {%- set mapping = recsys_eval.config_var(columns_var, {}) or {} -%}
    {%- if mapping is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ columns_var ~ " must be a mapping {canonical column: your column}, got: " ~ mapping) }}
    {%- endif -%}
    {%- set layout = (recsys_eval.config_var('recsys_eval__exposures_layout', 'nested') or 'nested') | lower
        if table == 'exposures' else 'nested' -%}
    {%- if layout not in ['nested', 'item_rows'] -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__exposures_layout must be nested or item_rows, got: " ~ layout) }}
    {%- endif -%}
    {%- set canonical = spec['columns'] -%}
    {%- set required = spec['required'] -%}
    {%- if layout == 'item_rows' -%}
        {%- do canonical.pop('items') -%}
        {%- do canonical.update({
            'item_id': 'id', 'rank': 'bigint', 'propensity': 'double', 'logging_propensity': 'double',
            'target_propensity': 'double',
        }) -%}
        {%- do required.append('item_id') -%}
    {%- endif -%}
    {%- for key in mapping -%}
        {%- if key not in canonical and key not in ['load_id', 'load_seq', 'source_file', 'line_no'] -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ columns_var ~ ": unknown column '" ~ key ~ "'; the " ~ table ~ " columns are "
                ~ (canonical.keys() | list | join(', '))) }}
        {%- endif -%}
    {%- endfor -%}

    {#- the relation's columns, by lower-cased name -#}
    {%- set present = {} -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do present.update({column.name | lower: column}) -%}
    {%- endfor -%}
    {%- if present | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "recsys_eval: table " ~ relation ~ " (source " ~ table ~ ") does not exist or has no columns; "
            ~ "set var recsys_eval__raw_schema / recsys_eval__" ~ table ~ "_identifier, or turn the source off") }}
    {%- endif -%}

    {#- canonical column -> the relation's column (None when absent) -#}
    {%- set found = {} -%}
    {%- for key in canonical -%}
        {%- set name = (mapping.get(key) or key) | string -%}
        {%- if mapping.get(key) and (name | lower) not in present -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ columns_var ~ "." ~ key ~ " names column '" ~ name ~ "', which " ~ relation
                ~ " does not have (its columns: " ~ (present.keys() | list | join(', ')) ~ ")") }}
        {%- endif -%}
        {%- if (name | lower) in present -%}
            {%- do found.update({key: present[name | lower]}) -%}
        {%- elif key in required -%}
            {{ exceptions.raise_compiler_error(
                "recsys_eval: " ~ relation ~ " has no column '" ~ name ~ "' (the " ~ table ~ " column "
                ~ key ~ "); map it with var " ~ columns_var ~ ": {" ~ key ~ ": <your column>}") }}
        {%- endif -%}
    {%- endfor -%}

    {#- lineage: all four present (the CLI's raw tables) or derived -#}
    {%- set lineage = ['load_id', 'load_seq', 'source_file', 'line_no'] -%}
    {%- set lineage_present = [] -%}
    {%- for key in lineage -%}
        {%- if ((mapping.get(key) or key) | lower) in present -%}
            {%- do lineage_present.append(key) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set has_lineage = lineage_present | length == 4 and layout == 'nested' -%}
    {%- set order_var = 'recsys_eval__' ~ table ~ '_order_by' -%}
    {%- set order_by = recsys_eval.config_var(order_var, none) -%}
    {%- if order_by is not none and (order_by | lower) not in present -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ order_var ~ " names column '" ~ order_by ~ "', which " ~ relation ~ " does not have") }}
    {%- endif -%}

    {%- set ts_unit = recsys_eval.config_var('recsys_eval__ts_unit', none) -%}
    {%- if ts_unit is not none and (ts_unit | lower) not in ['s', 'ms', 'us', 'timestamp'] -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__ts_unit must be s, ms, us or timestamp (null = a timestamp or RFC 3339 text), got: "
            ~ ts_unit) }}
    {%- endif -%}

    {%- set exprs = {} -%}
    {%- for key, kind in canonical.items() -%}
        {%- set column = found.get(key) -%}
        {%- if column is none -%}
            {%- set expr = none -%}
        {%- else -%}
            {%- set expr = adapter.quote(column.name) -%}
        {%- endif -%}
        {%- if kind == 'id' or kind == 'text' or kind == 'event_type' -%}
            {%- set value = 'cast(null as ' ~ dbt.type_string() ~ ')' if expr is none
                else (expr if column.is_string() else 'cast(' ~ expr ~ ' as ' ~ dbt.type_string() ~ ')') -%}
        {%- elif kind == 'ts' -%}
            {%- if expr is none -%}
                {%- set value = 'cast(null as ' ~ dbt.type_timestamp() ~ ')' -%}
            {%- elif ts_unit is not none and (ts_unit | lower) in ['s', 'ms', 'us'] -%}
                {%- set value = recsys_eval.epoch_to_timestamp(expr, ts_unit | lower) -%}
            {%- elif column.is_integer() or column.is_float() or column.is_number() -%}
                {{ exceptions.raise_compiler_error(
                    "recsys_eval: " ~ relation ~ " column '" ~ column.name ~ "' (ts) is numeric ("
                    ~ column.data_type ~ "); set var recsys_eval__ts_unit to s, ms or us") }}
            {%- else -%}
                {%- set value = 'cast(' ~ expr ~ ' as ' ~ dbt.type_timestamp() ~ ')' -%}
            {%- endif -%}
        {%- elif kind == 'context' -%}
            {%- set value = recsys_eval.context_as_map(expr, column) -%}
        {%- elif kind == 'double' -%}
            {%- set value = 'cast(' ~ (expr or 'null') ~ ' as ' ~ recsys_eval.type_double() ~ ')' -%}
        {%- elif kind == 'bigint' -%}
            {%- set value = 'cast(' ~ (expr or 'null') ~ ' as bigint)' -%}
        {%- elif kind == 'boolean' -%}
            {%- set value = 'cast(' ~ (expr or 'null') ~ ' as boolean)' -%}
        {%- else -%}
            {%- set value = expr -%}
        {%- endif -%}
        {%- do exprs.update({key: value}) -%}
    {%- endfor -%}
    {%- if table == 'outcomes' -%}
        {%- do exprs.update({'event_type': recsys_eval.mapped_event_type(exprs['event_type'])}) -%}
    {%- endif -%}

    {%- set tie_break = [] -%}
    {%- if order_by is not none -%}
        {%- do tie_break.append(adapter.quote(present[order_by | lower].name)) -%}
    {%- endif -%}
    {%- if found.get('ts') is not none -%}
        {%- do tie_break.append(exprs['ts']) -%}
    {%- endif -%}
    {%- for key, kind in canonical.items() -%}
        {%- if found.get(key) is not none and kind in ['id', 'text', 'event_type', 'double', 'bigint'] -%}
            {%- do tie_break.append(exprs[key]) -%}
        {%- endif -%}
    {%- endfor -%}

    {%- if has_lineage -%}
select
    {% for key in lineage -%}
    {{ adapter.quote(present[(mapping.get(key) or key) | lower].name) }} as {{ key }},
    {% endfor -%}
    {% for key, value in exprs.items() -%}
    {{ value }} as {{ key }}{{ ',' if not loop.last }}
    {% endfor -%}
from {{ relation }}
    {%- elif layout == 'item_rows' -%}
        {%- set list_keys = ['request_id', 'user_id', 'ts'] -%}
with

item_rows as (

    select
        {% for key, value in exprs.items() -%}
        {{ value }} as {{ key }},
        {% endfor -%}
        {{ tie_break[0] if order_by is not none else 'cast(null as bigint)' }} as list_order_key
    from {{ relation }}

),

lists as (

    select
        request_id,
        user_id,
        ts,
        {{ recsys_eval.any_value('context') }} as context,
        max(latency_ms) as latency_ms,
        max(case when error then 1 else 0 end) = 1 as error,
        min(list_order_key) as list_order_key,
        {{ recsys_eval.collect_exposure_items() }} as items
    from item_rows
    group by request_id, user_id, ts

)

select
    cast(null as {{ dbt.type_string() }}) as load_id,
    cast(0 as bigint) as load_seq,
    {{ recsys_eval.string_literal(relation.identifier) }} as source_file,
    row_number() over (
        order by {{ 'list_order_key, ' if order_by is not none }}ts, request_id, user_id
    ) as line_no,
    request_id,
    user_id,
    ts,
    items,
    context,
    latency_ms,
    error
from lists
    {%- else -%}
select
    cast(null as {{ dbt.type_string() }}) as load_id,
    cast(0 as bigint) as load_seq,
    {{ recsys_eval.string_literal(relation.identifier) }} as source_file,
    row_number() over (order by {{ tie_break | join(', ') }}) as line_no,
    {% for key, value in exprs.items() -%}
    {{ value }} as {{ key }}{{ ',' if not loop.last }}
    {% endfor -%}
from {{ relation }}
    {%- endif -%}
{%- endmacro %}


{#- mapped_event_type(expr): var recsys_eval__outcome_event_types ({click: [click, tap], conversion:
    [purchase]}) applied to an event type; an unlisted type is kept as it is. -#}
{% macro mapped_event_type(expr) -%}
    {%- set mapping = recsys_eval.config_var('recsys_eval__outcome_event_types', {}) or {} -%}
    {%- if mapping is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__outcome_event_types must be a mapping {event type: [their event types]}, got: "
            ~ mapping) }}
    {%- endif -%}
    {%- if mapping | length == 0 -%}
        {{ return(expr) }}
    {%- endif -%}
    {%- set branches = [] -%}
    {%- for canonical, theirs in mapping.items() -%}
        {%- set names = [theirs] if theirs is string else theirs -%}
        {%- set literals = [] -%}
        {%- for name in names -%}
            {%- do literals.append(recsys_eval.string_literal(name | string | lower)) -%}
        {%- endfor -%}
        {%- if literals | length > 0 -%}
            {%- do branches.append('when lower(' ~ expr ~ ') in (' ~ (literals | join(', ')) ~ ') then '
                ~ recsys_eval.string_literal(canonical | string | lower)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return('case ' ~ (branches | join(' ')) ~ ' else ' ~ expr ~ ' end') }}
{%- endmacro %}


{#- context_as_map(expr, column): a context column as map(string, string): a map as it is, JSON text
    parsed, a struct through its JSON text; none (no column) = a null map. -#}
{% macro context_as_map(expr, column) -%}
    {%- if expr is none -%}
        {{ return(recsys_eval.parse_string_map_json('cast(null as ' ~ dbt.type_string() ~ ')')) }}
    {%- endif -%}
    {%- set data_type = column.data_type | lower -%}
    {%- if data_type.startswith('map') -%}
        {{ return(expr) }}
    {%- elif data_type.startswith('struct') -%}
        {{ return(recsys_eval.parse_string_map_json(recsys_eval.to_json_text(expr))) }}
    {%- else -%}
        {{ return(recsys_eval.parse_string_map_json(expr)) }}
    {%- endif -%}
{%- endmacro %}
