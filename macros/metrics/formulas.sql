{#-
    Offline metric formulas (reference §4.4 and §4.5). Every macro renders a SQL expression of type
    double (recsys_eval.type_double, never float); the models only feed them aggregates.
-#}

{#- metric_log2(x): log base 2. Default ln(x) / ln(2), which every engine has. -#}
{% macro metric_log2(x) -%}
    {{ return(adapter.dispatch('metric_log2', 'recsys_eval')(x)) }}
{%- endmacro %}

{% macro default__metric_log2(x) -%}
    (ln(cast({{ x }} as {{ recsys_eval.type_double() }})) / ln(cast(2 as {{ recsys_eval.type_double() }})))
{%- endmacro %}

{#- metric_discount(position): the NDCG gain discount 1 / log2(position + 1) of a 1-based position. -#}
{% macro metric_discount(position) -%}
    (cast(1 as {{ recsys_eval.type_double() }}) / {{ recsys_eval.metric_log2('(' ~ position ~ ') + 1') }})
{%- endmacro %}

{#-
    metric_precision(hits, list_len, k, dialect='reference'): hits / |Lk| in the reference dialect (the
    denominator is min(k, |L|), not k; 0 when L is empty); hits / k in the trec dialect (P@k).
-#}
{% macro metric_precision(hits, list_len, k, dialect='reference') -%}
    {%- if dialect == 'trec' -%}
    {{ recsys_eval.safe_divide(hits, k) }}
    {%- else -%}
    {{ recsys_eval.safe_divide(hits, list_len) }}
    {%- endif -%}
{%- endmacro %}

{#- metric_recall(hits, relevant_count): hits / |R|; 0 when R is empty. Can exceed 1 with duplicates in L. -#}
{% macro metric_recall(hits, relevant_count) -%}
    {{ recsys_eval.safe_divide(hits, relevant_count) }}
{%- endmacro %}

{#- metric_hitrate(hits): 1 when some item of Lk is relevant, else 0. -#}
{% macro metric_hitrate(hits) -%}
    cast(case when {{ hits }} > 0 then 1 else 0 end as {{ recsys_eval.type_double() }})
{%- endmacro %}

{#-
    metric_map(precision_sum, list_len, relevant_count, k, dialect='reference'): AP@k = [sum over
    relevant positions i <= k of (hits among the first i) / i] divided by min(|R|, k) in the reference
    dialect (0 when L or R is empty), by |R| in the trec dialect (map_cut_k; 0 when R is empty).
    precision_sum is that sum (see metric_ap_term).
-#}
{% macro metric_map(precision_sum, list_len, relevant_count, k, dialect='reference') -%}
    {%- if dialect == 'trec' -%}
    {{ recsys_eval.safe_divide(precision_sum, relevant_count) }}
    {%- else -%}
    case
        when {{ list_len }} = 0 or {{ relevant_count }} = 0 then cast(0 as {{ recsys_eval.type_double() }})
        else {{ recsys_eval.safe_divide(precision_sum, 'least(' ~ relevant_count ~ ', ' ~ k ~ ')') }}
    end
    {%- endif -%}
{%- endmacro %}

{#- metric_ap_term(cumulative_hits, position): (hits among the first i positions) / i of one relevant position. -#}
{% macro metric_ap_term(cumulative_hits, position) -%}
    {{ recsys_eval.safe_divide(cumulative_hits, position) }}
{%- endmacro %}

{#-
    metric_ndcg(dcg, idcg, list_len, relevant_count): DCG / IDCG, DCG = sum of gain / log2(i + 1) over
    Lk, IDCG the same over R's gains in decreasing order at positions 1..min(|R|, k), even when L is
    shorter (binary gains by default); 0 when L or R is empty. Both dialects.
-#}
{% macro metric_ndcg(dcg, idcg, list_len, relevant_count) -%}
    case
        when {{ list_len }} = 0 or {{ relevant_count }} = 0 then cast(0 as {{ recsys_eval.type_double() }})
        else {{ recsys_eval.safe_divide(dcg, idcg) }}
    end
{%- endmacro %}

{#- metric_mrr(first_relevant_position): 1 / (first relevant position within Lk); 0 when there is none (null). -#}
{% macro metric_mrr(first_relevant_position) -%}
    {{ recsys_eval.safe_divide(1, first_relevant_position) }}
{%- endmacro %}

{#- metric_coverage(covered_items, universe_items): distinct items in some Lk / distinct items in some L or R. -#}
{% macro metric_coverage(covered_items, universe_items) -%}
    {{ recsys_eval.safe_divide(covered_items, universe_items) }}
{%- endmacro %}

{#-
    metric_novelty_term(popularity, total): -log2(pop(i) / T) of one Lk occurrence, pop and T counted
    over the full lists. The metric is the mean of these terms (0 without occurrences).
-#}
{% macro metric_novelty_term(popularity, total) -%}
    (-{{ recsys_eval.metric_log2(recsys_eval.safe_divide(popularity, total)) }})
{%- endmacro %}

{#- metric_entropy_term(item_count, occurrences): -(c/N)·log2(c/N) of one item's Lk count c out of N. -#}
{% macro metric_entropy_term(item_count, occurrences) -%}
    (-{{ recsys_eval.safe_divide(item_count, occurrences) }}
        * {{ recsys_eval.metric_log2(recsys_eval.safe_divide(item_count, occurrences)) }})
{%- endmacro %}

{#-
    metric_diversity(entropy, occurrences, distinct_items): normalized Shannon entropy
    H / log2(distinct items); 0 when N = 0 or at most one distinct item.
-#}
{% macro metric_diversity(entropy, occurrences, distinct_items) -%}
    case
        when coalesce({{ occurrences }}, 0) = 0 or coalesce({{ distinct_items }}, 0) <= 1
            then cast(0 as {{ recsys_eval.type_double() }})
        else {{ recsys_eval.safe_divide(entropy, recsys_eval.metric_log2(distinct_items)) }}
    end
{%- endmacro %}
