-- Seeds mode only: the tiny ranker_a seed in the shape of raw.ranker_a (ranklist.v1).
{{ config(enabled=(var('recsys_eval__source', 'seeds') == 'seeds' and recsys_eval.using_source('rankers'))) }}
-- depends_on: {{ ref('recsys_eval_tiny_ranker_a') }}
{{ recsys_eval.ranklist_base('ranker_a') }}
