"""Slate OPE (docs/ope.md, "Slate OPE"): standard, independent and reward-interaction IPS over the
logged ranked list, after obp's SlateStandardIPS, SlateIndependentIPS and SlateRewardInteractionIPS.

dbt computes everything per slate (int_recsys_eval__ope_slates) and sums it per scope and estimator
(int_recsys_eval__ope_slate_sums) and per Poisson bootstrap replicate
(int_recsys_eval__ope_slate_bootstrap); this module only turns those few rows into estimates,
standard errors, percentile intervals and weight diagnostics. Per complete slate i with slots
k = 1..K, slot reward r_k and per-position ratio rho_k = target_k / logging_k (each clipped at
ope.clipping when > 0):

    slate_standard_ips     t_i = (Π_k rho_k) Σ_k r_k
    slate_independent_ips  t_i = Σ_k rho_k r_k
    slate_rips             t_i = Σ_k (Π_{j<=k} rho_j) r_k

value = (1/n) Σ t_i, std_error = sqrt(s² / n) with s² the sample variance of t (n - 1).
"""

from __future__ import annotations

import math
from typing import Any

from recsys_eval.errors import RecsysEvalError

STANDARD, INDEPENDENT, RIPS = "slate_standard_ips", "slate_independent_ips", "slate_rips"
SLATE_ESTIMATORS = (STANDARD, INDEPENDENT, RIPS)
# the bootstrap model's column of each estimator's weighted term sum
_BOOT_COLUMNS = {
    STANDARD: "standard_term_sum",
    INDEPENDENT: "independent_term_sum",
    RIPS: "rips_term_sum",
}
# which propensity each estimator needs (the report says it beside the weights)
WEIGHT_DEFINITIONS = {
    STANDARD: "one weight per slate: the product over its slots of target / logging",
    INDEPENDENT: "one weight per slot: its own target / logging",
    RIPS: "one weight per slot: the product of target / logging over the slots at or above it",
}


def requested(names: tuple[str, ...]) -> tuple[str, ...]:
    """The slate estimators among `names`, in their order."""
    return tuple(n for n in names if n in SLATE_ESTIMATORS)


def _value_se(n: int, term_sum: float, term_sq_sum: float) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 0.0
    value = term_sum / n
    if n == 1:
        return value, 0.0
    variance = max((term_sq_sum - term_sum * term_sum / n) / (n - 1), 0.0)
    return value, math.sqrt(variance / n)


def percentile_interval(values: list[float], level: float) -> tuple[float, float]:
    """Sorted values at floor(a (B - 1)) and ceil((1 - a) (B - 1)), a = (1 - level) / 2 (the OPE and
    offline bootstraps' rule)."""
    ordered = sorted(values)
    a = (1.0 - level) / 2.0
    b = len(ordered)
    return ordered[math.floor(a * (b - 1))], ordered[math.ceil((1.0 - a) * (b - 1))]


def weight_stats(row: dict[str, Any]) -> dict[str, Any]:
    """count, mean, max, Kish effective sample size (Σw)² / Σw² and the clipped share of the
    estimator's weights (per slate for standard IPS, per slot for the others)."""
    count = int(row["weights"])
    total, squares = float(row["weight_sum"] or 0.0), float(row["weight_sq_sum"] or 0.0)
    return {
        "count": count,
        "mean": total / count if count else 0.0,
        "max": float(row["weight_max"] or 0.0),
        "effective_sample_size": total * total / squares if squares else 0.0,
        "clipped_fraction": int(row["clipped_weights"]) / count if count else 0.0,
    }


def read(con: Any, staging_schema: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict]:
    """The sums rows, the bootstrap rows and the slate counts (a few rows; nothing per slate)."""

    def rows(query: str) -> list[dict[str, Any]]:
        cur = con.execute(query)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    schema = f'"{staging_schema}"'
    sums = rows(
        f"select * from {schema}.int_recsys_eval__ope_slate_sums "
        "order by scope, segment_key, estimator"
    )
    boot = rows(f"select * from {schema}.int_recsys_eval__ope_slate_bootstrap order by replicate")
    # the slate counts ride on every global row (the same for each estimator)
    first = next((r for r in sums if r["scope"] == "global"), None)
    counts = {
        "slates": int(first["slates"]) + int(first["incomplete_slates"]) if first else 0,
        "incomplete_slates": int(first["incomplete_slates"]) if first else 0,
        "unweighted_slots": int(first["unweighted_slots"] or 0) if first else 0,
    }
    return sums, boot, counts


def compute(
    names: tuple[str, ...],
    sums: list[dict[str, Any]],
    boot: list[dict[str, Any]],
    counts: dict[str, Any],
    ope: dict[str, Any],
    z: float,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, list[dict[str, Any]]], list[str]]:
    """The estimator entries (global), the `ope.slate` block, the entries per segment and the
    warnings."""
    level = ope["bootstrap"]["ci_level"]
    by_key = {(r["scope"], r["segment_key"], r["estimator"]): r for r in sums}
    entries: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    logged = None
    complete = 0
    for name in names:
        row = by_key.get(("global", "__all__", name))
        if row is None:
            continue
        n = int(row["slates"])
        complete = n
        value, se = _value_se(n, float(row["term_sum"] or 0.0), float(row["term_sq_sum"] or 0.0))
        entry: dict[str, Any] = {"name": name, "value": value, "std_error": se}
        replicate_values = [
            float(b[_BOOT_COLUMNS[name]]) / int(b["slates"]) for b in boot if int(b["slates"]) > 0
        ]
        if replicate_values:
            lower, upper = percentile_interval(replicate_values, level)
            entry["ci"] = {
                "lower": lower,
                "upper": upper,
                "level": level,
                "method": "poisson_bootstrap",
                "replicates": len(replicate_values),
            }
        entries.append(entry)
        stats[name] = {**weight_stats(row), "weights": WEIGHT_DEFINITIONS[name]}
        if logged is None:
            mean, lse = _value_se(
                n, float(row["reward_sum"] or 0.0), float(row["reward_sq_sum"] or 0.0)
            )
            logged = {
                "value": mean,
                "std_error": lse,
                "samples": n,
                "ci": {"lower": mean - z * lse, "upper": mean + z * lse, "level": level,
                       "method": "normal"},
            }  # fmt: skip
    if names and complete == 0:
        raise RecsysEvalError(
            f"no complete slate for the slate estimators ({', '.join(names)}): every one of the "
            f"{counts['slates']} slates has a listed item without a usable logging propensity"
            + ("" if ope["allow_missing_target_propensity"] else " or target propensity")
            + "; no report was written"
        )
    by_segment: dict[str, list[dict[str, Any]]] = {}
    for (scope, key, name), row in by_key.items():
        if scope != "segment" or name not in names:
            continue
        n = int(row["slates"])
        if n == 0:
            continue  # a segment whose slates are all incomplete has no estimate
        value, se = _value_se(n, float(row["term_sum"]), float(row["term_sq_sum"]))
        by_segment.setdefault(key, []).append(
            {"name": name, "value": value, "std_error": se, "samples": int(row["slates"])}
        )
    for key in by_segment:
        by_segment[key].sort(key=lambda e: names.index(e["name"]))
    block = {
        "estimators": list(names),
        "slates": int(counts["slates"]),
        "complete_slates": complete,
        "incomplete_slates": int(counts["incomplete_slates"]),
        "propensities": "per-position marginals; products taken as if positions were chosen "
        "independently (docs/ope.md)",
        "weight_stats": stats,
        "logged_policy": logged,
    }
    warnings = []
    if counts["incomplete_slates"]:
        warnings.append(
            f"incomplete_slates: {counts['incomplete_slates']} of {counts['slates']} slates have "
            f"{counts['unweighted_slots']} listed item(s) without a usable logging propensity"
            + ("" if ope["allow_missing_target_propensity"] else " or target propensity")
            + " and are left out of the slate estimators (a slate weight needs every slot's); log "
            "both propensities for every shown item, or lower ope.top_k to the slots you log"
        )
    for name, s in stats.items():
        if s["count"] >= 100 and 0 < s["effective_sample_size"] < 0.2 * s["count"]:
            warnings.append(
                f"slate_low_effective_sample_size: {name}: {s['effective_sample_size']:.4g} of "
                f"{s['count']} weights: the slate weights are very uneven; prefer slate_rips or "
                "slate_independent_ips (shorter products), clip, or lower ope.top_k"
            )
    return entries, block, by_segment, warnings


def estimate_rows(
    entries: list[dict[str, Any]],
    by_segment: dict[str, list[dict[str, Any]]],
    complete: int,
    z: float,
    level: float,
    first_position: int,
) -> list[dict[str, Any]]:
    """Rows of fct_ope_estimates (the same columns as the other estimators')."""
    out = []
    for i, e in enumerate(entries):
        ci = e.get("ci") or {}
        out.append(
            {
                "scope": "global",
                "segment_key": "__all__",
                "estimator": e["name"],
                "estimator_position": first_position + i,
                "samples": complete,
                "estimate": e["value"],
                "reference_variance": None,
                "std_error": e["std_error"],
                "normal_ci_lower": e["value"] - z * e["std_error"],
                "normal_ci_upper": e["value"] + z * e["std_error"],
                "bootstrap_ci_lower": ci.get("lower"),
                "bootstrap_ci_upper": ci.get("upper"),
                "ci_level": level,
            }
        )
    positions = {e["name"]: first_position + i for i, e in enumerate(entries)}
    for key, seg in by_segment.items():
        for e in seg:
            out.append(
                {
                    "scope": "segment",
                    "segment_key": key,
                    "estimator": e["name"],
                    "estimator_position": positions.get(e["name"]),
                    "samples": e["samples"],
                    "estimate": e["value"],
                    "reference_variance": None,
                    "std_error": e["std_error"],
                    "normal_ci_lower": e["value"] - z * e["std_error"],
                    "normal_ci_upper": e["value"] + z * e["std_error"],
                    "bootstrap_ci_lower": None,
                    "bootstrap_ci_upper": None,
                    "ci_level": level,
                }
            )
    return out


def add_to_section(
    con: Any,
    staging_schema: str,
    ope: dict[str, Any],
    names: tuple[str, ...],
    z: float,
    section: dict[str, Any],
    warnings: list[str],
    rows: list[dict[str, Any]],
) -> None:
    """Append the requested slate estimators to `section` (estimators, by_segment, `slate`),
    `warnings` and the fct_ope_estimates `rows`."""
    names = requested(names)
    if not names:
        return
    sums, boot, counts = read(con, staging_schema)
    entries, block, by_segment, more = compute(names, sums, boot, counts, ope, z)
    for entry in entries:
        for v in (entry["value"], entry["std_error"], *(entry.get("ci") or {}).values()):
            if isinstance(v, float) and not math.isfinite(v):
                raise RecsysEvalError(
                    f"{entry['name']} is not finite: a slate weight overflowed (a product of "
                    "huge target / logging ratios); set ope.clipping or lower ope.top_k"
                )
    level = ope["bootstrap"]["ci_level"]
    first = len(section["estimators"]) + 1
    section["estimators"] = [*section["estimators"], *entries]
    section["slate"] = block
    for key, seg_entries in by_segment.items():
        segment = section.setdefault("by_segment", {}).get(key)
        if segment is not None:
            segment["estimators"] = [*segment["estimators"], *seg_entries]
    warnings += more
    rows += estimate_rows(entries, by_segment, block["complete_slates"], z, level, first)


def dbt_vars(ope: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The slate keys of var recsys_eval__ope (macros/ope/ope_options.sql)."""
    on = bool(requested(names))
    boot = ope["bootstrap"]
    return {
        "slate": on,
        "slate_bootstrap_iterations": int(boot["iterations"]) if on and boot["enabled"] else 0,
        "slate_bootstrap_seed": int(boot["seed"]),
    }
