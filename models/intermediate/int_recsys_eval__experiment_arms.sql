{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set control_literal = 'cast(null as ' ~ dbt.type_string() ~ ')' if experiment.control_variant is none
    else recsys_eval.string_literal(experiment.control_variant) -%}
{%- set candidate_literal = 'cast(null as ' ~ dbt.type_string() ~ ')' if experiment.candidate_variant is none
    else recsys_eval.string_literal(experiment.candidate_variant) %}

with

variant_stats as (

    select * from {{ ref('int_recsys_eval__experiment_variant_stats') }}
    where scope = 'global'

),

configured as (

    select
        {{ control_literal }} as configured_control_variant,
        {{ candidate_literal }} as configured_candidate_variant

),

observed as (

    select
        variant,
        exposures,
        true as is_observed

    from variant_stats

),

configured_candidate as (

    -- a configured candidate counts even when it has no assigned exposure (its metrics read as 0)
    select
        configured.configured_candidate_variant as variant,
        cast(0 as {{ dbt.type_bigint() }}) as exposures,
        false as is_observed

    from configured
    left join observed
        on configured.configured_candidate_variant = observed.variant
    where
        configured.configured_candidate_variant is not null
        and observed.variant is null

),

arms as (

    select * from observed

    union all

    select * from configured_candidate

),

control_ranked as (

    -- control (reference §5.5): the configured variant when it has exposures, else the variant with
    -- the most exposures; the reference breaks ties in hash order, here alphabetically
    select
        arms.variant,
        row_number() over (
            order by
                case when arms.variant = configured.configured_control_variant then 0 else 1 end asc,
                arms.exposures desc,
                arms.variant asc
        ) as control_rank

    from arms
    cross join configured
    where arms.is_observed

),

candidate_ranked as (

    -- candidate (decision only): the configured variant even when absent, else the non-control
    -- variant with the most exposures, ties alphabetically first
    select
        arms.variant,
        row_number() over (
            order by
                case when arms.variant = configured.configured_candidate_variant then 0 else 1 end asc,
                arms.exposures desc,
                arms.variant asc
        ) as candidate_rank

    from arms
    cross join configured
    left join control_ranked
        on arms.variant = control_ranked.variant
    where
        coalesce(control_ranked.control_rank, 0) != 1
        or arms.variant = configured.configured_candidate_variant

),

final as (

    select
        arms.variant,
        arms.exposures,
        arms.is_observed,
        coalesce(control_ranked.control_rank = 1, false) as is_control,
        coalesce(candidate_ranked.candidate_rank = 1, false) as is_candidate,
        coalesce(arms.variant = configured.configured_control_variant, false) as is_configured_control,
        coalesce(arms.variant = configured.configured_candidate_variant, false) as is_configured_candidate

    from arms
    cross join configured
    left join control_ranked
        on arms.variant = control_ranked.variant
    left join candidate_ranked
        on arms.variant = candidate_ranked.variant

)

select * from final
