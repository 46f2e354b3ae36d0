"""`recsys-eval run --mode ope`: dbt builds fct_ope_samples and their aggregates
(int_recsys_eval__ope_group_sums: sums per scope; int_recsys_eval__ope_block_sums: sums per
bootstrap block); this reads the aggregates only (recsys_eval.ope.aggregates: no sample leaves
the engine), computes the estimators, writes fct_ope_estimates and fct_ope_diagnostics back into
the run database and returns the report's `ope` section (reference §6.4 fields first, new fields
added)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from recsys_eval.config import RunConfig
from recsys_eval.errors import RecsysEvalError
from recsys_eval.modes import ModeContext, ModeOutput, ModePlugin
from recsys_eval.ope import aggregates as agg_mod
from recsys_eval.ope import diagnostics as diag_mod
from recsys_eval.ope import readout, slate
from recsys_eval.ope.estimators import Estimate, Interval, Samples, bootstrap_from_blocks

# int_recsys_eval__ope_rows holds the request-unit samples and every exposure row's item diagnostics
SELECTORS = ("+fct_ope_samples", "+int_recsys_eval__ope_rows")
# the aggregates the CLI reads instead of the samples (recsys_eval.ope.aggregates)
SELECTORS += ("+int_recsys_eval__ope_group_sums", "+int_recsys_eval__ope_block_sums")
# the bootstrap's most blocks G (var recsys_eval__ope.bootstrap_blocks)
BOOTSTRAP_BLOCKS = 10_000
# the slate estimators' sums and bootstrap (empty unless a slate estimator is requested)
SELECTORS += ("+int_recsys_eval__ope_slate_sums", "+int_recsys_eval__ope_slate_bootstrap")
# the estimators that use the reward model's terms (model_logged, model_target)
MODEL_ESTIMATORS = frozenset({"dr", "dm", "sndr", "switch_dr"})
NORMAL_Z = {0.8: 1.2815515655446004, 0.9: 1.6448536269514722, 0.95: 1.959963984540054,
            0.99: 2.5758293035489004}  # fmt: skip


def estimator_names(ope: dict[str, Any]) -> tuple[str, ...]:
    """`ope.estimators` when given; otherwise the reference's (ips, snips if enable_snips, dr if
    enable_dr) plus dm, sndr and switch_dr with dr (they share its reward model)."""
    if ope.get("estimators"):
        # the slate estimators are not these: ope/slate.py adds them from their own sums
        return tuple(n for n in ope["estimators"] if n not in slate.SLATE_ESTIMATORS)
    names = ["ips"]
    if ope["enable_snips"]:
        names.append("snips")
    if ope["enable_dr"]:
        names += ["dr", "dm", "sndr", "switch_dr"]
    return tuple(names)


def ope_vars_block(ope: dict[str, Any]) -> dict[str, Any]:
    """The dbt var recsys_eval__ope for a normalised `ope` config block."""
    return {
        "reward_event": ope["reward_event"].lower(),
        "unit": ope["unit"],
        "reward_aggregation": ope["reward_aggregation"],
        "top_k": ope["top_k"],
        "clipping": ope["clipping"],
        "min_propensity": ope["min_propensity"],
        # the reference: "log2" means the discount, anything else none
        "position_discount": "log2" if ope.get("position_discount") == "log2" else "none",
        "allow_missing_target_propensity": ope["allow_missing_target_propensity"],
        "reward_model": ope["reward_model"],
        "slice_keys": list(ope.get("slice_keys", [])),
        # without DM / DR / SNDR / Switch-DR: no reward model, no second pass over the items
        "reward_model_terms": uses_reward_model(ope),
        # the aggregates' Switch-DR residual and bootstrap blocks (int_recsys_eval__ope_group_sums,
        # int_recsys_eval__ope_block_sums)
        "switch_threshold": float(ope["switch_threshold"]),
        "bootstrap_blocks": BOOTSTRAP_BLOCKS,
        # the slate estimators (ope/slate.py): their models are empty unless one is requested
        **slate.dbt_vars(ope, tuple(ope.get("estimators", ()))),
    }


def uses_reward_model(ope: dict[str, Any]) -> bool:
    """True when some requested estimator reads model_logged / model_target."""
    return any(name in MODEL_ESTIMATORS for name in estimator_names(ope))


def ope_vars(cfg: RunConfig) -> dict[str, Any]:
    return {"recsys_eval__ope": ope_vars_block(cfg.eval["ope"])}


# --- reading ------------------------------------------------------------------------------------
def _check_ranks(con: Any, schema: str) -> None:
    """Reject samples without a finite log2 position weight, naming the first one; the item view is
    read only when int_recsys_eval__ope_group_sums counted some."""
    unranked = con.execute(
        f"""select coalesce(max(unranked_samples), 0)
            from "{schema}".int_recsys_eval__ope_group_sums where scope = 'global'"""
    ).fetchone()
    if unranked is None or int(unranked[0]) == 0:
        return
    bad = con.execute(
        f"""
        select exposures.source_file, items.line_no, items.item_id, items.item_rank,
            count(*) over () as bad_items
        from "{schema}".int_recsys_eval__ope_items as items
        inner join "{schema}".stg_recsys_eval__exposures as exposures
            on items.exposure_row_id = exposures.exposure_row_id
        where items.item_status = 'sample' and items.position_weight is null
        order by items.load_seq, items.line_no, items.item_position
        limit 1
        """
    ).fetchone()
    if bad:
        source, line, item, rank, total = bad
        raise RecsysEvalError(
            f"{source}:{line}: items[].rank: item {item!r} has rank {rank}; the log2 position "
            f"discount needs rank >= 1 (1/log2(rank + 1) is infinite or undefined otherwise); "
            f"{total} item(s) affected. Fix the ranks or drop ope.position_discount."
        )


def read_samples(
    con: Any, schema: str, unit: str, with_model: bool, staging_schema: str | None = None
) -> tuple[Samples, np.ndarray, list[str], int]:
    """The samples in file order, their segment codes, the segment keys and the clipped items: the
    per-sample reference the tests check the aggregates against (aggregates.from_samples); the CLI
    never reads samples (it reads aggregates.read_aggregates).

    Request unit: the rows of int_recsys_eval__ope_rows with a sampled item (fct_ope_samples is a
    view over them that adds the ids); item unit: fct_ope_samples. Without a reward-model estimator
    the model columns are not read (they are null) and stay zero here. `schema` holds the marts,
    `staging_schema` (default: the same) the intermediate models."""
    if unit == "request":
        source = f'"{staging_schema or schema}".int_recsys_eval__ope_rows'
        where, order = "where item_count > 0", ("load_seq", "line_no")
    else:
        source = f'"{schema}".fct_ope_samples'
        where, order = "", ("load_seq", "line_no", "item_position")
    keys = [
        r[0]
        for r in con.execute(
            f"select distinct segment_key from {source} {where} order by segment_key"
        ).fetchall()
    ]
    model = "model_logged, model_target, " if with_model else ""
    if len(keys) > 1:
        # the segment codes by a join with the few distinct keys (a window over every sample would
        # sort them all once more)
        query = f"""
            with segments as (
                select segment_key, row_number() over (order by segment_key) - 1 as segment_code
                from (select distinct segment_key from {source} {where})
            )
            select
                samples.importance_weight, samples.reward, {model}samples.clipped_items,
                segments.segment_code
            from (select * from {source} {where}) as samples
            inner join segments on samples.segment_key = segments.segment_key
            order by {", ".join(f"samples.{c}" for c in order)}
        """
    else:
        query = f"""
            select importance_weight, reward, {model}clipped_items
            from {source} {where}
            order by {", ".join(order)}
        """
    cols = con.execute(query).fetchnumpy()
    weight = np.asarray(cols["importance_weight"], dtype=np.float64)
    zeros = np.zeros_like(weight)
    samples = Samples(
        weight=weight,
        reward=np.asarray(cols["reward"], dtype=np.float64),
        model_logged=np.asarray(cols["model_logged"], dtype=np.float64) if with_model else zeros,
        model_target=np.asarray(cols["model_target"], dtype=np.float64) if with_model else zeros,
    )
    clipped = int(np.asarray(cols["clipped_items"], dtype=np.int64).sum())
    codes = (
        np.asarray(cols["segment_code"], dtype=np.int64)
        if len(keys) > 1
        else np.zeros(weight.shape[0], dtype=np.int64)
    )
    return samples, codes, keys, clipped


# --- the section --------------------------------------------------------------------------------
def _estimator_entry(e: Estimate, ci: Interval | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": e.name, "value": e.value}
    if e.variance != 0:
        entry["variance"] = e.variance  # omitempty, as the reference
    entry["std_error"] = e.std_error
    if ci is not None:
        entry["ci"] = {
            "lower": ci.lower,
            "upper": ci.upper,
            "level": ci.level,
            "method": ci.method,
            "replicates": ci.replicates,
        }
    return entry


def _normal_z(level: float) -> float:
    if level in NORMAL_Z:
        return NORMAL_Z[level]
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def compute(
    agg: agg_mod.OpeAggregates,
    counts: diag_mod.ItemCounts,
    ope: dict[str, Any],
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """The `ope` section, its warnings, and the rows of fct_ope_estimates / fct_ope_diagnostics,
    from the aggregates (read_aggregates, or aggregates.from_samples)."""
    names = estimator_names(ope)
    tau = float(ope["switch_threshold"])
    boot_cfg = ope["bootstrap"]
    g = agg.overall
    estimates = agg_mod.estimates(g, names)
    intervals: dict[str, Interval] = {}
    if boot_cfg["enabled"]:
        intervals = bootstrap_from_blocks(
            agg.block_sums,
            names,
            iterations=boot_cfg["iterations"],
            seed=boot_cfg["seed"],
            ci_level=boot_cfg["ci_level"],
        )
    stats = _weight_stats(g, g.clipped_items)
    diag = diag_mod.diagnostics(counts, g.samples)
    warnings = diag_mod.warnings_for(
        stats, diag, ope["allow_missing_target_propensity"], ope["min_propensity"]
    )
    section: dict[str, Any] = {
        "unit": ope["unit"],
        "reward_aggregation": ope["reward_aggregation"],
        "estimators": [_estimator_entry(e, intervals.get(e.name)) for e in estimates],
        "weight_stats": stats,
        "diagnostics": diag,
        "reward_event": ope["reward_event"].lower(),
        "reward_model": ope["reward_model"],
    }
    if "switch_dr" in names:
        section["switch_threshold"] = tau
    level = boot_cfg["ci_level"]
    z = _normal_z(level)
    # the readout (new fields): the logged policy's value, disagreement / ESS warnings, guidance
    section["logged_policy"] = _logged(g, z, level)
    more, pairs, _ = readout.readout_warnings(section["estimators"], stats, z, level)
    warnings += more
    r2 = agg_mod.reward_model_r2(g) if uses_reward_model(ope) else None
    section["guidance"] = {
        **readout.guidance(names, {w.split(":")[0] for w in warnings}, pairs, r2),
        "reward_model_r2": r2,
    }
    estimate_rows = [
        {
            "scope": "global",
            "segment_key": "__all__",
            "estimator": e.name,
            "estimator_position": i + 1,
            "samples": g.samples,
            "estimate": e.value,
            "reference_variance": e.variance,
            "std_error": e.std_error,
            "normal_ci_lower": e.value - z * e.std_error,
            "normal_ci_upper": e.value + z * e.std_error,
            "bootstrap_ci_lower": intervals[e.name].lower if e.name in intervals else None,
            "bootstrap_ci_upper": intervals[e.name].upper if e.name in intervals else None,
            "ci_level": level,
        }
        for i, e in enumerate(estimates)
    ]
    diagnostic_rows = [{"scope": "global", "segment_key": "__all__", **stats, **diag}]
    if ope.get("slice_keys") and agg.segments:
        keys = list(agg.segments)
        groups = [agg.segments[k] for k in keys]
        grouped = agg_mod.segment_estimates(groups)
        by_segment: dict[str, Any] = {}
        for code, key in enumerate(keys):
            seg_stats = _weight_stats(groups[code], 0)
            del seg_stats["clipped_fraction"]  # clipped items are counted globally only
            entries = []
            for i, name in enumerate(names):
                value = float(grouped[f"value_{name}"][code])
                se = float(grouped[f"se_{name}"][code])
                entries.append({"name": name, "value": value, "std_error": se})
                estimate_rows.append(
                    {
                        "scope": "segment",
                        "segment_key": key,
                        "estimator": name,
                        "estimator_position": i + 1,
                        "samples": int(grouped["n"][code]),
                        "estimate": value,
                        "reference_variance": None,
                        "std_error": se,
                        "normal_ci_lower": value - z * se,
                        "normal_ci_upper": value + z * se,
                        "bootstrap_ci_lower": None,
                        "bootstrap_ci_upper": None,
                        "ci_level": level,
                    }
                )
            by_segment[key] = {
                "estimators": entries,
                "weight_stats": seg_stats,
                "logged_policy": _logged(groups[code], z, level),
            }
            diagnostic_rows.append({"scope": "segment", "segment_key": key, **seg_stats})
        section["by_segment"] = by_segment
    for value in _numbers(section):
        if not math.isfinite(value):
            raise RecsysEvalError(
                "OPE produced a non-finite number (infinite or NaN weights or rewards); check "
                "the propensities (a logging propensity of 0 or a huge target) and the outcome "
                "values"
            )
    return section, warnings, estimate_rows, diagnostic_rows


def _weight_stats(g: agg_mod.GroupSums, clipped_items: int) -> dict[str, Any]:
    return diag_mod.weight_stats_from_sums(
        g.samples, g.sum_weight, g.sum_weight_squares, g.p95_weight, g.max_weight, clipped_items
    )


def _logged(g: agg_mod.GroupSums, z: float, level: float) -> dict[str, Any]:
    return readout.logged_from_sums(float(g.samples), g.sum_reward, g.sum_reward_squares, z, level)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    if isinstance(value, float):
        return [value]
    return []


# --- writing ------------------------------------------------------------------------------------
ESTIMATE_COLUMNS = (
    ("scope", "varchar"),
    ("segment_key", "varchar"),
    ("estimator", "varchar"),
    ("estimator_position", "integer"),
    ("samples", "bigint"),
    ("estimate", "double"),
    ("reference_variance", "double"),
    ("std_error", "double"),
    ("normal_ci_lower", "double"),
    ("normal_ci_upper", "double"),
    ("bootstrap_ci_lower", "double"),
    ("bootstrap_ci_upper", "double"),
    ("ci_level", "double"),
)
DIAGNOSTIC_COLUMNS = (
    ("scope", "varchar"),
    ("segment_key", "varchar"),
    ("count", "bigint"),
    ("mean", "double"),
    ("p95", "double"),
    ("max", "double"),
    ("effective_sample_size", "double"),
    ("clipped_fraction", "double"),
    ("missing_target_propensity", "bigint"),
    ("near_zero_propensity", "bigint"),
    ("total_items", "bigint"),
    ("listed_items", "bigint"),
    ("sample_items", "bigint"),
    ("missing_logging_propensity", "bigint"),
    ("clipped_items", "bigint"),
    ("clipped_item_fraction", "double"),
    ("item_weight_mean", "double"),
    ("item_weight_mean_std_error", "double"),
    ("target_mass_outside_logging_support", "double"),
)


def write_table(
    con: Any, schema: str, name: str, columns: tuple[tuple[str, str], ...], rows: list[dict]
) -> None:
    """Replace `schema.name` with `rows` (one transaction: all or nothing)."""
    ddl = ", ".join(f'"{c}" {t}' for c, t in columns)
    con.execute("begin transaction")
    try:
        con.execute(f'create or replace table "{schema}".{name} ({ddl})')
        if rows:
            marks = ", ".join("?" for _ in columns)
            con.executemany(
                f'insert into "{schema}".{name} values ({marks})',
                [[r.get(c) for c, _ in columns] for r in rows],
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def collect(ctx: ModeContext) -> ModeOutput:
    from recsys_eval.warehouse import connect

    ope = ctx.cfg.eval["ope"]
    con = connect(Path(ctx.database))
    try:
        _check_ranks(con, ctx.staging_schema)
        agg, counts = agg_mod.read_aggregates(con, ctx.staging_schema)
        if agg.samples == 0:
            raise RecsysEvalError(
                "no valid samples for OPE: no listed item has a positive logging propensity"
                + ("" if ope["allow_missing_target_propensity"] else " and a target propensity")
                + f" ({counts.listed_items} items listed, {counts.missing_logging_propensity} "
                f"without a logging propensity, {counts.missing_target_propensity} without a "
                "target propensity); no report was written"
            )
        section, warnings, estimate_rows, diagnostic_rows = compute(agg, counts, ope)
        slate.add_to_section(
            con, ctx.staging_schema, ope, tuple(ope.get("estimators", ())),
            _normal_z(ope["bootstrap"]["ci_level"]), section, warnings, estimate_rows,
        )  # fmt: skip
        write_table(con, ctx.schema, "fct_ope_estimates", ESTIMATE_COLUMNS, estimate_rows)
        write_table(con, ctx.schema, "fct_ope_diagnostics", DIAGNOSTIC_COLUMNS, diagnostic_rows)
    finally:
        con.close()
    return ModeOutput(key="ope", section=section, cases_evaluated=agg.samples, warnings=warnings)


PLUGIN = ModePlugin(selectors=SELECTORS, dbt_vars=ope_vars, collect=collect)
