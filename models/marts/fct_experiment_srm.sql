{{ config(enabled=var('recsys_eval__using_assignments', true)) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set expected = experiment.srm_expected -%}
{%- set double = recsys_eval.type_double() %}

with

observed as (

    select * from {{ ref('int_recsys_eval__experiment_srm_observed') }}

),

settings as (

    select
        {{ recsys_eval.experiment_double_literal(experiment.srm_alpha) }} as alpha,
        cast({{ experiment.srm_min_sample }} as {{ dbt.type_bigint() }}) as min_sample

),

configured_weights as (

    -- var recsys_eval__experiment_srm_expected, one row per variant (no rows when empty)
    {% if expected | length == 0 -%}
    select
        cast(null as {{ dbt.type_string() }}) as variant,
        cast(null as {{ double }}) as weight
    from settings
    where 1 = 0
    {%- else -%}
    {%- for entry in expected %}
    select
        {{ recsys_eval.string_literal(entry.variant) }} as variant,
        {{ recsys_eval.experiment_double_literal(entry.weight) }} as weight
    {%- if not loop.last %}
    union all
    {%- endif -%}
    {%- endfor -%}
    {%- endif %}

),

populations as (

    select
        scope,
        segment_key,
        sum(observed_rows) as sample_size,
        count(*) as observed_variants

    from observed
    group by
        scope,
        segment_key

),

cells as (

    -- observed variants, plus every expected variant of each population (an expected arm with zero rows)
    select
        scope,
        segment_key,
        variant

    from observed

    union distinct

    select
        populations.scope,
        populations.segment_key,
        configured_weights.variant

    from populations
    cross join configured_weights

),

weighted as (

    -- with an expected map, weights are renormalised over the whole map; without one, every
    -- observed variant of the population gets weight 1 (an equal split)
    select
        cells.scope,
        cells.segment_key,
        cells.variant,
        coalesce(observed.observed_rows, 0) as observed_rows,
        populations.sample_size,
        {% if expected | length == 0 -%}
        cast(1 as {{ double }}) as weight,
        cast(populations.observed_variants as {{ double }}) as weight_total,
        {%- else -%}
        configured_weights.weight,
        {{ recsys_eval.experiment_double_literal(expected | sum(attribute='weight')) }} as weight_total,
        {%- endif %}
        configured_weights.variant is not null as is_in_expected

    from cells
    inner join populations
        on
            cells.scope = populations.scope
            and cells.segment_key = populations.segment_key
    left join observed
        on
            cells.scope = observed.scope
            and cells.segment_key = observed.segment_key
            and cells.variant = observed.variant
    left join configured_weights
        on cells.variant = configured_weights.variant

),

expected_counts as (

    select
        *,
        weight / weight_total * sample_size as expected_rows

    from weighted

),

cell_terms as (

    -- only observed variants with a positive expected count contribute (reference §5.9)
    select
        *,
        observed_rows > 0 and coalesce(expected_rows, 0) > 0 as is_contributing,
        case
            when observed_rows > 0
                then {{ recsys_eval.experiment_chi_square_term('observed_rows', 'coalesce(expected_rows, 0)') }}
            else 0.0e0
        end as chi_square_term,
        observed_rows = 0 and coalesce(weight, 0) > 0 as is_expected_arm_missing,
        observed_rows > 0 and not is_in_expected and {{ 'true' if expected | length > 0 else 'false' }}
            as is_unexpected_variant

    from expected_counts

),

tests as (

    select
        scope,
        segment_key,
        sum(chi_square_term) as chi_square,
        sum(case when is_contributing then 1 else 0 end) as contributing_variants,
        max(case when is_expected_arm_missing then 1 else 0 end) = 1 as has_expected_arm_missing,
        max(case when is_unexpected_variant then 1 else 0 end) = 1 as has_unexpected_variant

    from cell_terms
    group by
        scope,
        segment_key

),

degrees as (

    select
        *,
        contributing_variants - 1 as degrees_of_freedom

    from tests

),

p_values as (

    -- p = 1 with fewer than two contributing variants or when an observed variant has no expected
    -- weight (the reference's error path); chi-square survival function otherwise
    select
        degrees.*,
        case
            when degrees.has_unexpected_variant or degrees.contributing_variants < 2 then 1.0e0
            else {{ recsys_eval.chi2_sf('degrees.chi_square', 'degrees.degrees_of_freedom') }}
        end as p_value

    from degrees

),

final as (

    select
        ----------  grain
        cell_terms.scope,
        cell_terms.segment_key,
        cell_terms.variant,

        ----------  the variant's cell
        cast(cell_terms.observed_rows as {{ dbt.type_bigint() }}) as observed_rows,
        cast(cell_terms.weight as {{ double }}) as expected_weight,
        cast(cell_terms.expected_rows as {{ double }}) as expected_rows,
        cell_terms.is_contributing,
        cell_terms.is_expected_arm_missing,
        cell_terms.is_unexpected_variant,

        ----------  the population's test (repeated on each of its variants)
        cast(cell_terms.sample_size as {{ dbt.type_bigint() }}) as sample_size,
        cast(p_values.chi_square as {{ double }}) as chi_square,
        cast(p_values.degrees_of_freedom as {{ dbt.type_bigint() }}) as degrees_of_freedom,
        cast(p_values.p_value as {{ double }}) as p_value,
        settings.alpha,
        settings.min_sample,
        cell_terms.sample_size >= settings.min_sample and p_values.p_value < settings.alpha as is_detected,
        p_values.has_expected_arm_missing,
        p_values.has_unexpected_variant

    from cell_terms
    inner join p_values
        on
            cell_terms.scope = p_values.scope
            and cell_terms.segment_key = p_values.segment_key
    cross join settings

)

select * from final
