"""Off-policy evaluation (OPE): the estimators over fct_ope_samples and the `ope` report section.

`estimators` holds the numpy formulas (no per-row Python loops), `diagnostics` the weight statistics
and warnings, `plugin` the `recsys-eval run --mode ope` glue (read the samples, write the marts).
"""
