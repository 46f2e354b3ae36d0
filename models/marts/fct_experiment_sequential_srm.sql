{{ config(enabled=recsys_eval.using_source('assignments')) }}
{%- set experiment = recsys_eval.experiment_config() -%}
{%- set sequential = recsys_eval.experiment_sequential_config() -%}
{%- set double = recsys_eval.type_double() -%}
{%- set expected = experiment.srm_expected -%}
{%- set concentration = recsys_eval.experiment_double_literal(sequential.srm_concentration) -%}
{%- set experiment_id = recsys_eval.config_var('recsys_eval__experiment_id', none) %}

with

bucket_stats as (

    select * from {{ ref('int_recsys_eval__experiment_bucket_stats') }}

),

configured_weights as (

    -- var recsys_eval__experiment_srm_expected, one row per variant; without it every observed arm
    -- gets weight 1 (an equal split), as in fct_experiment_srm
    {% if expected | length == 0 -%}
    select
        variant,
        cast(1 as {{ double }}) as weight

    from bucket_stats
    group by variant
    {%- else -%}
    {%- for entry in expected %}
    select
        {{ recsys_eval.string_literal(entry.variant) }} as variant,
        {{ recsys_eval.experiment_double_literal(entry.weight) }} as weight
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    {%- endif %}

),

null_probabilities as (

    select
        variant,
        weight / sum(weight) over () as null_probability

    from configured_weights

),

cells as (

    -- each arm's cumulative units at the end of each bucket beside its expected share (null when the
    -- arm is not in the expected map)
    select
        bucket_stats.bucket,
        bucket_stats.bucket_index,
        bucket_stats.bucket_start_epoch_us,
        bucket_stats.variant,
        bucket_stats.units,
        null_probabilities.null_probability

    from bucket_stats
    left join null_probabilities
        on bucket_stats.variant = null_probabilities.variant

),

bucket_log_bayes_factors as (

    -- ln BF of the Dirichlet-multinomial test on the cumulative counts (Lindon & Malek 2022); units in
    -- an arm expected to get none make a certain mismatch
    select
        bucket,
        bucket_index,
        bucket_start_epoch_us,
        sum(units) as units,
        count(*) as arms,
        sum(case when units > 0 and coalesce(null_probability, 0.0e0) = 0.0e0 then 1 else 0 end)
            as arms_unexpected,
        {{ recsys_eval.experiment_ssrm_total_log_bf('sum(units)', concentration) }}
        + sum(
            case
                when null_probability > 0
                    then {{ recsys_eval.experiment_ssrm_cell_log_bf(
                        'units', concentration ~ ' * null_probability', 'null_probability') }}
                else 0.0e0
            end
        ) as log_bayes_factor

    from cells
    group by
        bucket,
        bucket_index,
        bucket_start_epoch_us

),

bucket_p_values as (

    -- 1 / BF capped at 1, computed as exp(-max(0, ln BF)) so that it cannot overflow
    select
        *,
        case
            when arms_unexpected > 0 then 0.0e0
            else exp(-greatest(0.0e0, log_bayes_factor))
        end as bucket_p_value

    from bucket_log_bayes_factors

),

running as (

    -- the sequential p-value: the smallest 1 / BF so far (valid under continuous monitoring)
    select
        *,
        min(bucket_p_value) over (
            order by bucket_index
            rows between unbounded preceding and current row
        ) as sequential_p_value

    from bucket_p_values

),

final as (

    select
        {{ recsys_eval.string_literal(experiment_id if experiment_id is not none else '') }} as experiment_id,
        bucket,
        cast(bucket_index as {{ dbt.type_bigint() }}) as bucket_index,
        bucket_start_epoch_us,
        {{ recsys_eval.experiment_timestamp_from_epoch_us('bucket_start_epoch_us') }} as bucket_start,
        cast(units as {{ dbt.type_bigint() }}) as units,
        cast(arms as {{ dbt.type_bigint() }}) as arms,
        cast(log_bayes_factor as {{ double }}) as log_bayes_factor,
        cast(sequential_p_value as {{ double }}) as sequential_p_value,
        {{ concentration }} as dirichlet_concentration,
        {{ recsys_eval.experiment_double_literal(experiment.srm_alpha) }} as srm_alpha,
        sequential_p_value < {{ recsys_eval.experiment_double_literal(experiment.srm_alpha) }} as is_mismatch

    from running

)

select * from final
