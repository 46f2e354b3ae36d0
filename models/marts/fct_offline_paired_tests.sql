{%- set significance = recsys_eval.offline_significance() -%}
{%- set alpha = (1 - significance.ci_level) / 2 %}

with

paired_requests as (

    select * from {{ ref('int_recsys_eval__offline_paired_requests') }}

),

pairs as (

    select * from paired_requests
    where pair_status = 'paired'

),

metric_counts as (

    -- every per-case metric of this run, with how many requests each run evaluated
    select
        metric_position,
        metric_name,
        sum(case when pair_status = 'paired' then 1 else 0 end) as paired_requests,
        sum(case when pair_status = 'current_only' then 1 else 0 end) as current_only_requests,
        sum(case when pair_status = 'baseline_only' then 1 else 0 end) as baseline_only_requests

    from paired_requests
    group by
        metric_position,
        metric_name

),

pair_sums as (

    select
        metric_position,
        {{ recsys_eval.exact_sum('current_value') }} as current_sum,
        {{ recsys_eval.exact_sum('baseline_value') }} as baseline_sum,
        {{ recsys_eval.exact_sum('difference') }} as difference_sum,
        {{ recsys_eval.exact_sum('abs(difference)') }} as absolute_difference_sum,
        count(*) as pairs

    from pairs
    group by metric_position

),

pair_means as (

    select
        metric_position,
        pairs,
        difference_sum,
        absolute_difference_sum,
        current_sum / pairs as current_mean,
        baseline_sum / pairs as baseline_mean,
        difference_sum / pairs as difference_mean,
        -- a sign-flip replicate reaches the observed |sum| within a relative 1e-9 of sum |d| (rounding in
        -- exact ties)
        abs(difference_sum) - 1.0e-9 * absolute_difference_sum as exceedance_threshold

    from pair_sums

),

deviation_terms as (

    select
        pairs.metric_position,
        (pairs.difference - pair_means.difference_mean)
        * (pairs.difference - pair_means.difference_mean) as squared_deviation

    from pairs
    inner join pair_means
        on pairs.metric_position = pair_means.metric_position

),

deviations as (

    -- the second pass of the variance: squared deviations from the mean difference
    select
        metric_position,
        {{ recsys_eval.exact_sum('squared_deviation') }} as squared_deviation_sum

    from deviation_terms
    group by metric_position

),

paired_request_ids as (

    select distinct request_id from pairs

),

permutation_replicates as (

    select cast(generated_number as {{ dbt.type_bigint() }}) as replicate
    from ({{ dbt.generate_series(significance.permutations) }}) as series

),

request_signs as (

    -- the randomization test: in replicate r a request's two values are swapped (its difference changes
    -- sign) when the uniform number of md5('flip|<seed>|<request_id>|<r>') is below 0.5; one sign per
    -- request and replicate, shared by every metric
    select
        paired_request_ids.request_id,
        permutation_replicates.replicate,
        {{ recsys_eval.permutation_sign(recsys_eval.hash_uniform(
            recsys_eval.permutation_sign_key(significance.seed, 'paired_request_ids.request_id', 'permutation_replicates.replicate'))) }}
            as sign

    from paired_request_ids
    cross join permutation_replicates

),

flipped_sums as (

    select
        pairs.metric_position,
        request_signs.replicate,
        {{ recsys_eval.exact_sum('request_signs.sign * pairs.difference') }} as flipped_sum

    from pairs
    inner join request_signs
        on pairs.request_id = request_signs.request_id
    group by
        pairs.metric_position,
        request_signs.replicate

),

exceedances as (

    -- replicates whose |sum of signed differences| reaches the observed |sum| (the same statistic as the
    -- mean difference, n being fixed)
    select
        flipped_sums.metric_position,
        sum(
            case when abs(flipped_sums.flipped_sum) >= pair_means.exceedance_threshold then 1 else 0 end
        ) as exceedances,
        count(*) as replicates

    from flipped_sums
    inner join pair_means
        on flipped_sums.metric_position = pair_means.metric_position
    group by flipped_sums.metric_position

),

bootstrap_replicates as (

    select cast(generated_number as {{ dbt.type_bigint() }}) as replicate
    from ({{ dbt.generate_series(significance.iterations) }}) as series

),

request_draws as (

    -- Poisson bootstrap of the requests, as fct_offline_metric_intervals: the uniform number of
    -- md5('<seed>|<request_id>|<replicate>') per request and replicate, computed once
    select
        paired_request_ids.request_id,
        bootstrap_replicates.replicate,
        {{ recsys_eval.hash_uniform(recsys_eval.bootstrap_replicate_key(
            significance.seed, 'paired_request_ids.request_id', 'bootstrap_replicates.replicate')) }} as draw

    from paired_request_ids
    cross join bootstrap_replicates

),

request_weights as (

    -- its Poisson(1) weight by the inverse CDF
    select
        request_id,
        replicate,
        {{ recsys_eval.bootstrap_poisson_weight('draw') }} as weight

    from request_draws

),

replicate_means as (

    -- the weighted mean difference of a replicate; a replicate that drew no request has no row
    select
        pairs.metric_position,
        request_weights.replicate,
        {%- set weighted_sum = recsys_eval.exact_sum('request_weights.weight * pairs.difference') %}
        {{ recsys_eval.safe_divide(weighted_sum, 'sum(request_weights.weight)') }} as replicate_mean

    from pairs
    inner join request_weights
        on pairs.request_id = request_weights.request_id
    where request_weights.weight > 0
    group by
        pairs.metric_position,
        request_weights.replicate

),

ordered_means as (

    select
        metric_position,
        replicate_mean,
        row_number() over (partition by metric_position order by replicate_mean, replicate) - 1 as mean_index,
        count(*) over (partition by metric_position) as replicates

    from replicate_means

),

bounds as (

    -- the percentile interval of fct_offline_metric_intervals: sorted means at floor(a (B - 1)) and
    -- ceil((1 - a) (B - 1)), a = (1 - level) / 2, B = replicates that drew a request
    select
        metric_position,
        max(replicates) as bootstrap_replicates,
        max(case when mean_index = floor({{ alpha }} * (replicates - 1)) then replicate_mean end) as ci_lower,
        max(case when mean_index = ceil((1 - {{ alpha }}) * (replicates - 1)) then replicate_mean end) as ci_upper

    from ordered_means
    group by metric_position

),

final as (

    select
        metric_counts.metric_position,
        metric_counts.metric_name,
        cast(metric_counts.paired_requests as {{ dbt.type_bigint() }}) as paired_requests,
        cast(metric_counts.current_only_requests as {{ dbt.type_bigint() }}) as current_only_requests,
        cast(metric_counts.baseline_only_requests as {{ dbt.type_bigint() }}) as baseline_only_requests,
        cast(pair_means.current_mean as {{ recsys_eval.type_double() }}) as current_mean,
        cast(pair_means.baseline_mean as {{ recsys_eval.type_double() }}) as baseline_mean,
        cast(pair_means.difference_mean as {{ recsys_eval.type_double() }}) as difference_mean,
        cast(
            case when pair_means.pairs >= 2 then sqrt(deviations.squared_deviation_sum / (pair_means.pairs - 1)) end
            as {{ recsys_eval.type_double() }}
        ) as difference_sd,
        {%- set t_statistic = recsys_eval.paired_t_statistic(
            'pair_means.difference_mean', 'deviations.squared_deviation_sum', 'pair_means.pairs') %}
        cast({{ t_statistic }} as {{ recsys_eval.type_double() }}) as t_statistic,
        cast(pair_means.pairs - 1 as {{ dbt.type_bigint() }}) as degrees_of_freedom,
        cast(exceedances.exceedances as {{ dbt.type_bigint() }}) as permutation_exceedances,
        cast(exceedances.replicates as {{ dbt.type_bigint() }}) as permutations,
        cast(
            {{ recsys_eval.permutation_p_value('exceedances.exceedances', 'exceedances.replicates') }}
            as {{ recsys_eval.type_double() }}
        ) as permutation_p_value,
        cast(bounds.ci_lower as {{ recsys_eval.type_double() }}) as ci_lower,
        cast(bounds.ci_upper as {{ recsys_eval.type_double() }}) as ci_upper,
        cast({{ significance.ci_level }} as {{ recsys_eval.type_double() }}) as ci_level,
        cast(bounds.bootstrap_replicates as {{ dbt.type_bigint() }}) as bootstrap_replicates,
        cast({{ significance.seed }} as {{ dbt.type_bigint() }}) as seed

    from metric_counts
    left join pair_means
        on metric_counts.metric_position = pair_means.metric_position
    left join deviations
        on metric_counts.metric_position = deviations.metric_position
    left join exceedances
        on metric_counts.metric_position = exceedances.metric_position
    left join bounds
        on metric_counts.metric_position = bounds.metric_position

)

select * from final
