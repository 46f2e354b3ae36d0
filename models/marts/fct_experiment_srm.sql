{{ config(enabled=recsys_eval.using_source('assignments')) }}
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
        cast({{ experiment.srm_min_sample }} as {{ dbt.type_bigint() }}) as min_sample,
        {{ recsys_eval.experiment_double_literal(experiment.srm_min_share_deviation) }} as min_share_deviation

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

shares as (

    -- the practical size of a mismatch: observed share - expected share of the population (an
    -- unexpected variant expects 0, a missing expected arm observes 0)
    select
        *,
        cast(observed_rows as {{ double }}) / cast(sample_size as {{ double }}) as observed_share,
        coalesce(weight / weight_total, 0.0e0) as expected_share

    from expected_counts

),

cell_terms as (

    -- only observed variants with a positive expected count contribute (reference §5.9)
    select
        *,
        observed_share - expected_share as share_deviation,
        observed_rows > 0 and coalesce(expected_rows, 0) > 0 as is_contributing,
        case
            when observed_rows > 0
                then {{ recsys_eval.experiment_chi_square_term('observed_rows', 'coalesce(expected_rows, 0)') }}
            else 0.0e0
        end as chi_square_term,
        observed_rows = 0 and coalesce(weight, 0) > 0 as is_expected_arm_missing,
        observed_rows > 0 and not is_in_expected and {{ 'true' if expected | length > 0 else 'false' }}
            as is_unexpected_variant

    from shares

),

tests as (

    select
        scope,
        segment_key,
        max(sample_size) as sample_size,
        max(abs(share_deviation)) as max_abs_share_deviation,
        {{ recsys_eval.exact_sum('chi_square_term') }} as chi_square,
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

segment_family as (

    -- beyond the reference: the per-segment SRM tests form one family (the segments that can be
    -- detected, sample_size >= min_sample), Holm-corrected; the global test is a family of its own
    select
        p_values.scope,
        p_values.segment_key,
        p_values.p_value,
        row_number() over (order by p_values.p_value, p_values.segment_key) as p_value_rank,
        count(*) over () as family_size

    from p_values
    cross join settings
    where
        p_values.scope = 'segment'
        and p_values.sample_size >= settings.min_sample

),

segment_holm as (

    select
        scope,
        segment_key,
        family_size,
        {{ recsys_eval.experiment_adjusted_p_value('holm', 'p_value', 'p_value_rank', 'family_size') }}
            as holm_p_value

    from segment_family

),

corrected as (

    -- the global test keeps its p-value (Holm over a family of one); segments below min_sample get none
    select
        p_values.*,
        case
            when p_values.scope = 'global' then p_values.p_value
            else segment_holm.holm_p_value
        end as holm_p_value,
        segment_holm.family_size as segment_family_size

    from p_values
    left join segment_holm
        on
            p_values.scope = segment_holm.scope
            and p_values.segment_key = segment_holm.segment_key

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
        cast(cell_terms.observed_share as {{ double }}) as observed_share,
        cast(cell_terms.expected_share as {{ double }}) as expected_share,
        cast(cell_terms.share_deviation as {{ double }}) as share_deviation,

        ----------  the population's test (repeated on each of its variants)
        cast(cell_terms.sample_size as {{ dbt.type_bigint() }}) as sample_size,
        cast(corrected.chi_square as {{ double }}) as chi_square,
        cast(corrected.degrees_of_freedom as {{ dbt.type_bigint() }}) as degrees_of_freedom,
        cast(corrected.p_value as {{ double }}) as p_value,
        settings.alpha,
        settings.min_sample,
        cell_terms.sample_size >= settings.min_sample and corrected.p_value < settings.alpha as is_detected,
        corrected.has_expected_arm_missing,
        corrected.has_unexpected_variant,

        ----------  beyond the reference: Holm across segments and the practical-size gate
        cast(corrected.holm_p_value as {{ double }}) as holm_p_value,
        cast(corrected.segment_family_size as {{ dbt.type_bigint() }}) as segment_family_size,
        cast(corrected.max_abs_share_deviation as {{ double }}) as max_abs_share_deviation,
        settings.min_share_deviation,
        corrected.max_abs_share_deviation >= settings.min_share_deviation as is_share_deviation_material,
        coalesce(
            cell_terms.sample_size >= settings.min_sample
            and corrected.holm_p_value < settings.alpha
            and corrected.max_abs_share_deviation >= settings.min_share_deviation,
            false
        ) as is_material_srm

    from cell_terms
    inner join corrected
        on
            cell_terms.scope = corrected.scope
            and cell_terms.segment_key = corrected.segment_key
    cross join settings

)

select * from final
