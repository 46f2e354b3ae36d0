{#-
    One row per (analysis, segment_key): the segment keys of every segmented analysis with their
    parts as columns, so that an analyst filters a mart with
        join dim_segments using (analysis, segment_key) where tenant = 'DE'
    instead of matching the packed key ('surface=pdp|tenant=DE', escaped values).
    A column per slice key configured for any analysis whose name is a plain SQL identifier (the
    CLI only accepts such keys); its value is the context value unescaped ('' when the key is
    absent, as in the key), null when the key is not one of that analysis's slice keys. Built
    from the same context column and the same macro as each analysis's segment_key, so the keys
    are the marts' keys exactly.
-#}
{%- set using_assignments = recsys_eval.using_source('assignments') -%}
{%- set using_rankers = recsys_eval.using_source('rankers') -%}
{%- set ope = recsys_eval.ope_options() -%}
{%- set analyses = [
    {'name': 'offline', 'relation': ref('int_recsys_eval__requests'),
     'keys': recsys_eval.as_key_list(recsys_eval.config_var('recsys_eval__slice_keys', []))},
    {'name': 'experiment', 'relation': ref('int_recsys_eval__requests'),
     'keys': recsys_eval.as_key_list(recsys_eval.config_var('recsys_eval__experiment_slice_keys', []))},
    {'name': 'ope', 'relation': ref('stg_recsys_eval__exposures'),
     'keys': recsys_eval.as_key_list(ope.slice_keys)},
] -%}
{%- if using_assignments -%}
{%- do analyses.append({'name': 'srm', 'relation': ref('stg_recsys_eval__assignments'),
    'keys': recsys_eval.as_key_list(recsys_eval.config_var('recsys_eval__srm_slice_keys', []))}) -%}
{%- endif -%}
{%- if using_rankers -%}
-- depends_on: {{ ref('stg_recsys_eval__interleaved_exposures') }}
{%- set interleaving = recsys_eval.interleaving_config() -%}
{%- set logged = interleaving.source == 'logged' -%}
{%- do analyses.append({'name': 'interleaving', 'keys': interleaving.slice_keys,
    'relation': ref('stg_recsys_eval__interleaved_exposures') if logged
        else ref('int_recsys_eval__interleaving_requests')}) -%}
{%- endif -%}
{%- set segmented = analyses | selectattr('keys') | list -%}
{%- set columns = [] -%}
{%- for analysis in segmented -%}
    {%- for key in analysis['keys'] -%}
        {%- if modules.re.match('^[a-z_][a-z0-9_]*$', key) and key not in columns
            and key not in ['analysis', 'segment_key'] -%}
            {%- do columns.append(key) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endfor %}

with

{% for analysis in segmented -%}
{{ analysis['name'] }}_segments as (

    select distinct
        '{{ analysis["name"] }}' as analysis,
        {{ recsys_eval.segment_key('context', analysis['keys']) }} as segment_key
        {%- for column in columns %},
        {% if column in analysis['keys'] -%}
        coalesce({{ recsys_eval.map_lookup('context', recsys_eval.string_literal(column)) }}, '')
        {%- else -%}
        cast(null as {{ dbt.type_string() }})
        {%- endif %} as {{ column }}
        {%- endfor %}

    from {{ analysis['relation'] }}

),

{% endfor -%}
final as (

    {% for analysis in segmented -%}
    select * from {{ analysis['name'] }}_segments
    {% if not loop.last %}union all
    {% endif -%}
    {%- else -%}
    -- no analysis is segmented: an empty table with the key columns
    select
        cast(null as {{ dbt.type_string() }}) as analysis,
        cast(null as {{ dbt.type_string() }}) as segment_key
    where 1 = 0
    {%- endfor %}

)

select * from final
