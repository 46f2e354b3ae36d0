{{ config(enabled=recsys_eval.using_source('rankers')) }}
-- depends_on: {{ ref('stg_recsys_eval__ranker_b_lists') }}
-- One row per item of a ranker B list; the shared body is macros/staging/ranklist_staging.sql.
{{ recsys_eval.ranklist_items('ranker_b') }}
