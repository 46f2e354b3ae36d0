{{ config(enabled=recsys_eval.using_source('rankers')) }}
-- One row per ranklist.v1 record of ranker A; the shared body is macros/staging/ranklist_staging.sql.
{{ recsys_eval.ranklist_lists('ranker_a') }}
