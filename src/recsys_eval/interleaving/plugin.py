"""The interleaving mode's plug-in for `recsys-eval run` (see recsys_eval.modes)."""

from __future__ import annotations

from typing import Any

from recsys_eval.config import RunConfig
from recsys_eval.interleaving.section import build_section, simulated_algorithm, warnings_for
from recsys_eval.modes import ModeContext, ModeOutput, ModePlugin

SELECTORS = ("+fct_interleaving_results", "+fct_interleaving_credits")


def dbt_vars(cfg: RunConfig) -> dict[str, Any]:
    inter = cfg.eval["interleaving"]
    boot = inter.get("bootstrap", {})
    logged = "exposures" in cfg.dataset.get("interleaving", {})
    return {
        "recsys_eval__using_rankers": True,
        "recsys_eval__interleaving_algorithm": simulated_algorithm(inter["algorithm"]),
        "recsys_eval__interleaving_seed": inter["seed"],
        "recsys_eval__interleaving_max_results": inter["max_results"],
        "recsys_eval__interleaving_slice_keys": list(inter.get("slice_keys", [])),
        "recsys_eval__interleaving_source": "logged" if logged else "simulated",
        "recsys_eval__interleaving_bootstrap": {
            "iterations": boot.get("iterations", 200),
            "ci_level": boot.get("ci_level", 0.95),
        },
    }


def collect(ctx: ModeContext) -> ModeOutput:
    from recsys_eval.warehouse import connect

    con = connect(ctx.database, read_only=True)
    try:
        cur = con.execute(
            f'select * from "{ctx.schema}".fct_interleaving_results order by scope, segment_key'
        )
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    inter = ctx.cfg.eval["interleaving"]
    section = build_section(rows, inter["algorithm"], bool(inter.get("slice_keys")))
    return ModeOutput(
        key="interleaving",
        section=section,
        cases_evaluated=section["requests"],
        warnings=warnings_for(section, inter["algorithm"]),
        include_data_quality=False,
    )


PLUGIN = ModePlugin(selectors=SELECTORS, dbt_vars=dbt_vars, collect=collect)
