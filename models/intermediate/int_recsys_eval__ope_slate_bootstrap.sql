{%- set ope = recsys_eval.ope_options() -%}
{%- set double = recsys_eval.type_double() -%}
{%- set iterations = ope.slate_bootstrap_iterations | int -%}
{#-
    The slate estimators' Poisson bootstrap (docs/ope.md, "Slate OPE"): one row per replicate (1 ..
    ope.bootstrap.iterations) over the complete slates of int_recsys_eval__ope_slates, globally. Each
    slate gets an independent Poisson(1) weight per replicate from md5('<seed>|<load_seq>:<line_no>|<b>')
    (recsys_eval.bootstrap_poisson_weight), drawn once and used by all three estimators; the replicate's
    estimate is sum(weight x term) / sum(weight). No rows without a slate estimator or bootstrap.
-#}

with

ope_slates as (

    select * from {{ ref('int_recsys_eval__ope_slates') }}

),

replicates as (

    select cast(generated_number as {{ dbt.type_bigint() }}) as replicate
    from ({{ dbt.generate_series([iterations, 1] | max) }}) as series

),

complete_slates as (

    select
        {{ dbt.concat([
            'cast(load_seq as ' ~ dbt.type_string() ~ ')', "':'", 'cast(line_no as ' ~ dbt.type_string() ~ ')',
        ]) }} as slate_key,
        standard_term,
        independent_term,
        rips_term

    from ope_slates
    where
        is_complete
        {%- if iterations <= 0 %}
        and 1 = 0
        {%- endif %}

),

slate_draws as (

    select
        complete_slates.standard_term,
        complete_slates.independent_term,
        complete_slates.rips_term,
        replicates.replicate,
        {{ recsys_eval.hash_uniform(recsys_eval.bootstrap_replicate_key(
            ope.slate_bootstrap_seed, 'complete_slates.slate_key', 'replicates.replicate')) }} as draw

    from complete_slates
    cross join replicates

),

slate_weights as (

    select
        standard_term,
        independent_term,
        rips_term,
        replicate,
        {{ recsys_eval.bootstrap_poisson_weight('draw') }} as weight

    from slate_draws

),

drawn_weights as (

    -- a slate the replicate did not draw adds nothing to it
    select * from slate_weights
    where weight > 0

),

final as (

    -- a replicate that drew no slate has no row
    select
        replicate,
        sum(weight) as slates,
        cast({{ recsys_eval.exact_sum('weight * standard_term') }} as {{ double }}) as standard_term_sum,
        cast({{ recsys_eval.exact_sum('weight * independent_term') }} as {{ double }}) as independent_term_sum,
        cast({{ recsys_eval.exact_sum('weight * rips_term') }} as {{ double }}) as rips_term_sum

    from drawn_weights
    group by replicate

)

select * from final
