{{ config(enabled=var('recsys_eval__using_rankers', true)) }}
-- depends_on: {{ ref('stg_recsys_eval__ranker_b_lists') }}
-- One row per item of a ranker B list; the shared body is macros/staging/ranklist_staging.sql.
{{ recsys_eval.ranklist_items('ranker_b') }}
