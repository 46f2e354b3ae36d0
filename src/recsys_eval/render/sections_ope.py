"""Off-policy evaluation sections: estimators with their errors and intervals, importance weight
statistics and diagnostics (weight chart), and segments."""

from __future__ import annotations

from typing import Any

from recsys_eval.render.document import Chart, Paragraph, Section, Table
from recsys_eval.render.generic import GLOBAL, flatten, forest_row, leftover_blocks, records_table
from recsys_eval.render.numbers import fixed, interval

# -- OPE ----------------------------------------------------------------------------------------


def _estimator_rows(estimators: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            str(e.get("name")),
            fixed(e.get("value")),
            fixed(e.get("variance")) if "variance" in e else "",
            fixed(e.get("std_error")) if "std_error" in e else "",
            interval(e.get("ci")),
        ]
        for e in estimators
    ]


EST_HEADERS = ["Estimator", "Value", "Variance", "Std error", "CI"]
LOGGED_LABEL = "logged policy (on-policy mean)"


def _logged_rows(logged: Any) -> list[list[str]]:
    """The logged policy's value as one more row of an estimator table (its normal interval)."""
    if not isinstance(logged, dict) or "value" not in logged:
        return []
    return [
        [
            LOGGED_LABEL,
            fixed(logged.get("value")),
            "",
            fixed(logged.get("std_error")),
            interval(logged.get("ci")),
        ]
    ]


WEIGHT_KEYS = ["count", "mean", "p95", "max", "effective_sample_size", "clipped_fraction"]


def _slate_blocks(slate: Any) -> list[Any]:
    """The slate estimators' counts, the logged policy's mean slate reward and their weights."""
    if not isinstance(slate, dict):
        return []
    text = (
        f"Slate OPE: {slate.get('complete_slates', '?')} complete slates of "
        f"{slate.get('slates', '?')} ({slate.get('incomplete_slates', '?')} left out: a slot "
        f"without a usable propensity); propensities: {slate.get('propensities', '?')}."
    )
    blocks: list[Any] = [Paragraph(text)]
    logged = slate.get("logged_policy")
    if isinstance(logged, dict) and "value" in logged:
        row = _logged_rows(logged)[0]
        row[0] = "logged policy (mean slate reward)"
        blocks.append(Table(EST_HEADERS, [row], "Slate logged policy", numeric=(1, 2, 3)))
    stats = slate.get("weight_stats")
    if isinstance(stats, dict) and stats:
        rows = [{"estimator": k, **v} for k, v in stats.items() if isinstance(v, dict)]
        blocks.append(records_table(rows, "Slate weights"))
    return blocks


def ope_sections(ope: dict[str, Any]) -> list[Section]:
    sec = Section("Off-Policy Evaluation", "ope")
    sec.add(
        Paragraph(
            f"Unit: {ope.get('unit', '?')}; reward aggregation: "
            f"{ope.get('reward_aggregation', '?')}."
        )
    )
    estimators = [e for e in ope.get("estimators") or [] if isinstance(e, dict)]
    logged = ope.get("logged_policy")
    rows = _estimator_rows(estimators) + _logged_rows(logged)
    sec.add(Table(EST_HEADERS, rows, "Estimators", numeric=(1, 2, 3)))
    guide = ope.get("guidance")
    if isinstance(guide, dict) and guide.get("text"):
        sec.add(
            Paragraph(f"Which estimate to trust: {guide['text']} (rule {guide.get('rule', '?')}).")
        )
    known_e = {"name", "value", "variance", "std_error", "ci"}
    extra = [e for e in estimators if set(e) - known_e]
    if extra:
        sec.add(records_table(extra, "Estimator details"))
    with_ci = [e for e in estimators if isinstance(e.get("ci"), dict)]
    if with_ci:
        forest = [forest_row(e["name"], e["value"], e["ci"]) for e in with_ci]
        if _logged_rows(logged) and isinstance(logged.get("ci"), dict):
            forest.append(forest_row(LOGGED_LABEL, logged["value"], logged["ci"]))
        sec.add(
            Chart(
                "forest",
                "Estimates with confidence intervals",
                {"rows": forest},
                alt="dot plot of each estimator with its confidence interval",
            )
        )
    out = [sec]
    ws = ope.get("weight_stats") or {}
    diag = Section("OPE Weights and Diagnostics", "ope-diagnostics")
    if ws:
        keys = [k for k in WEIGHT_KEYS if k in ws] + [k for k in ws if k not in WEIGHT_KEYS]
        diag.add(
            Table(
                ["Weight statistic", "Value"],
                [[k, v] for k, v in flatten({k: ws[k] for k in keys})],
                numeric=(1,),
            )
        )
    if isinstance(ope.get("diagnostics"), dict):
        diag.add(
            Table(
                ["Diagnostic", "Value"],
                [[k, v] for k, v in flatten(ope["diagnostics"])],
                numeric=(1,),
            )
        )
    segments = ope.get("by_segment") or {}
    scopes = {GLOBAL: ws} if ws else {}
    scopes.update(
        {
            k: v.get("weight_stats")
            for k, v in segments.items()
            if isinstance(v, dict) and isinstance(v.get("weight_stats"), dict)
        }
    )
    if scopes:
        diag.add(
            Chart(
                "weights",
                "Importance weight distribution",
                {"scopes": scopes},
                alt="mean, p95 and max importance weight and effective sample size per segment",
            )
        )
    diag.add(*_slate_blocks(ope.get("slate")))
    out.append(diag)
    if segments:
        seg = Section("OPE by Segment", "ope-segments")
        rows = []
        for key, entry in segments.items():
            for r in _estimator_rows(entry.get("estimators") or []) + _logged_rows(
                entry.get("logged_policy")
            ):
                rows.append([key, *r])
        seg.add(Table(["Segment", *EST_HEADERS], rows, numeric=(2, 3, 4)))
        wrows = [
            {"segment": key, **(entry.get("weight_stats") or {})} for key, entry in segments.items()
        ]
        seg.add(records_table(wrows, "Weights by segment"))
        for key, entry in segments.items():
            seg.add(
                *leftover_blocks(
                    entry, {"estimators", "weight_stats", "logged_policy"}, f"Segment {key}"
                )
            )
        out.append(seg)
    known = {
        "unit",
        "reward_aggregation",
        "estimators",
        "weight_stats",
        "diagnostics",
        "by_segment",
        "logged_policy",
        "guidance",
        "slate",
    }
    out[-1].add(*leftover_blocks(ope, known, "Other OPE fields"))
    return out
