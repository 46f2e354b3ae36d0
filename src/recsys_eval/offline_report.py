"""The report's `offline` section: metrics, segments, baseline deltas, gates, highlights.

Pure functions over the rows of `fct_offline_metrics`, so the reference's rules (§4.8-4.10,
§8.4) are tested without a warehouse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recsys_eval.errors import RecsysEvalError

HIGHLIGHT_PRIORITY = ("ndcg", "map", "precision", "recall", "coverage", "hitrate", "mrr")


def metric_list(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`[{name, value}]` in configuration order (rows carry `metric_position`)."""
    ordered = sorted(rows, key=lambda r: int(r["metric_position"]))
    out = []
    for r in ordered:
        entry: dict[str, Any] = {"name": r["metric_name"], "value": float(r["metric_value"])}
        if r.get("ci"):
            entry["ci"] = {k: float(v) for k, v in r["ci"].items()}
        out.append(entry)
    return out


def offline_section(
    global_rows: list[dict[str, Any]], segment_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    by_segment: dict[str, list[dict[str, Any]]] = {}
    for row in segment_rows:
        by_segment.setdefault(row["segment_key"], []).append(row)
    section: dict[str, Any] = {"metrics": metric_list(global_rows)}
    if by_segment:
        section["by_segment"] = {k: metric_list(v) for k, v in sorted(by_segment.items())}
    return section


def case_counts(global_rows: list[dict[str, Any]], kept_cases: int) -> dict[str, int]:
    """The summary's case counts: `cases_evaluated` is the number of cases the per-case metrics
    average over (the global rows' `cases`; in the `trec` dialect only the cases with a judged and
    a ranked item, trec_eval's num_q), and `cases_total` every kept case (exposures minus
    duplicates: what the dataset metrics use), given only when the two differ. Without per-case
    metrics every kept case is evaluated."""
    averaged = {int(r["cases"]) for r in global_rows if r.get("metric_kind") == "per_case"}
    if len(averaged) > 1:
        raise RecsysEvalError(f"internal error: per-case metrics average {sorted(averaged)} cases")
    evaluated = averaged.pop() if averaged else kept_cases
    counts = {"cases_evaluated": evaluated}
    if evaluated != kept_cases:
        counts["cases_total"] = kept_cases
    return counts


def read_baseline(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecsysEvalError(f"baseline report not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecsysEvalError(f"{path}: baseline is not a JSON report: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("offline"), dict):
        raise RecsysEvalError("baseline report missing offline section")
    return report


def compare_baseline(metrics: list[dict[str, Any]], baseline: dict[str, Any]) -> dict[str, Any]:
    """§4.9: a delta for every current global metric whose lower-cased name the baseline has,
    in the current order; relative delta 0 (omitted) when the baseline value is 0."""
    before = {
        str(m.get("name", "")).lower(): float(m.get("value", 0))
        for m in baseline["offline"].get("metrics", [])
    }
    deltas = []
    for m in metrics:
        name = m["name"].lower()
        if name not in before:
            continue
        delta = m["value"] - before[name]
        entry: dict[str, Any] = {
            "name": m["name"],
            "delta": delta,
            "before": before[name],
            "after": m["value"],
        }
        relative = delta / before[name] if before[name] != 0 else 0.0
        if relative != 0:
            entry["relative_delta"] = relative
        deltas.append(entry)
    return {"baseline_run_id": baseline.get("run_id", ""), "deltas": deltas}


def evaluate_gates(gates: list[dict[str, Any]], deltas: list[dict[str, Any]]) -> list[dict]:
    """§4.10: a gate passes iff delta >= -max_drop; a metric without a delta fails (delta 0)."""
    by_name = {d["name"].lower(): d["delta"] for d in deltas}
    out = []
    for gate in gates:
        name = gate["metric"].lower()
        max_drop = float(gate.get("max_drop", 0.0))
        if name in by_name:
            delta, passed = by_name[name], by_name[name] >= -max_drop
        else:
            delta, passed = 0.0, False
        out.append(
            {"metric": gate["metric"], "max_drop": max_drop, "delta": delta, "passed": passed}
        )
    return out


def highlights(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """§8.4: up to three metrics, first of each priority family, then in list order."""
    chosen: list[dict[str, Any]] = []
    for family in HIGHLIGHT_PRIORITY:
        for m in metrics:
            if m["name"].lower().split("@")[0] == family:
                chosen.append(m)
                break
        if len(chosen) == 3:
            break
    for m in metrics:
        if len(chosen) == 3:
            break
        if m not in chosen:
            chosen.append(m)
    return [{"name": m["name"], "value": m["value"]} for m in chosen[:3]]


def key_deltas(deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """§8.4: the three largest |delta|, ties by name."""
    return sorted(deltas, key=lambda d: (-abs(d["delta"]), d["name"]))[:3]
