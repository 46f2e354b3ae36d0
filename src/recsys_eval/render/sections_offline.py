"""Offline sections: the reference's Offline Metrics table (6 decimals, CI 4/4/2), metrics by
segment and the baseline comparison, with their charts."""

from __future__ import annotations

from typing import Any

from recsys_eval.render.document import Chart, Paragraph, Section, Table
from recsys_eval.render.generic import GLOBAL, forest_row, leftover_blocks
from recsys_eval.render.numbers import fixed, interval, p_value, signed


def _metric_table(metrics: list[dict[str, Any]], title: str = "") -> Table:
    rows = [[str(m["name"]), fixed(float(m["value"]), 6), interval(m.get("ci"))] for m in metrics]
    return Table(["Metric", "Value", "CI"], rows, title=title, numeric=(1,))


def offline_sections(off: dict[str, Any]) -> list[Section]:
    metrics = off.get("metrics") or []
    main = Section("Offline Metrics", "offline-metrics")
    if metrics:
        main.add(_metric_table(metrics))
        with_ci = [m for m in metrics if isinstance(m.get("ci"), dict)]
        if with_ci:
            main.add(
                Chart(
                    "forest",
                    "Offline metrics with bootstrap confidence intervals",
                    {"rows": [forest_row(m["name"], m["value"], m["ci"]) for m in with_ci]},
                    alt="dot plot of each metric with its confidence interval",
                )
            )
    else:
        main.add(Paragraph("No metrics computed."))
    out = [main]
    segments = off.get("by_segment") or {}
    if segments:
        sec = Section("Offline Metrics by Segment", "offline-segments")
        names = [m["name"] for m in metrics] or [m["name"] for m in next(iter(segments.values()))]
        rows = [[GLOBAL] + [fixed(float(m["value"]), 4) for m in metrics]] if metrics else []
        values = {GLOBAL: {m["name"]: float(m["value"]) for m in metrics}}
        for seg, seg_metrics in segments.items():
            by_name = {m["name"]: float(m["value"]) for m in seg_metrics}
            values[seg] = by_name
            rows.append([seg] + [fixed(by_name.get(n), 4) for n in names])
        sec.add(
            Table(["Segment", *names], rows, numeric=tuple(range(1, len(names) + 1))),
            Chart(
                "grouped_bars",
                "Offline metrics by segment",
                {"panels": _metric_panels(names, values)},
                alt="bars of each metric per segment",
            ),
        )
        out.append(sec)
    baseline = off.get("baseline")
    if isinstance(baseline, dict):
        sec = Section("Baseline Comparison", "baseline")
        sec.add(Paragraph(f"Baseline run: {baseline.get('baseline_run_id', '')}"))
        rows = [
            [
                str(d["name"]),
                fixed(float(d["before"]), 6),
                fixed(float(d["after"]), 6),
                signed(float(d["delta"]), 6),
                signed(d.get("relative_delta"), 6) if "relative_delta" in d else "",
            ]
            for d in baseline.get("deltas") or []
        ]
        sec.add(
            Table(
                ["Metric", "Before", "After", "Delta", "Relative Delta"], rows, numeric=(1, 2, 3, 4)
            )
        )
        sec.add(*leftover_blocks(baseline, {"baseline_run_id", "deltas"}))
        out.append(sec)
    significance = off.get("significance")
    if isinstance(significance, dict):
        out.append(_significance_section(significance))
    out[-1].add(*leftover_blocks(off, {"metrics", "by_segment", "baseline", "significance"}))
    return out


def _significance_section(sig: dict[str, Any]) -> Section:
    """offline.significance: the paired tests against the baseline, per metric."""
    sec = Section("Paired Significance against the Baseline", "significance")
    defaults = sig.get("defaults_used") or []
    sec.add(
        Paragraph(
            f"Baseline run: {sig.get('baseline_run_id', '')}. Paired over the requests both runs "
            f"evaluated: t-test, randomization test ({sig.get('permutations')} seeded sign flips, "
            f"seed {sig.get('seed')}) and bootstrap interval of the mean difference "
            f"({sig.get('iterations')} replicates); p-values corrected across metrics with "
            f"{sig.get('correction')}; significant = the {sig.get('test')} test's corrected p "
            f"below {sig.get('alpha')}."
            + (f" Defaults used (not set): {', '.join(map(str, defaults))}." if defaults else "")
        )
    )
    rows = [
        [
            str(m.get("name", "")),
            str(m.get("paired_requests", "")),
            signed(m.get("mean_difference"), 6),
            interval(m.get("ci"), 6, signs=True),
            p_value(m.get("t_p_value")),
            p_value(m.get("t_p_value_adjusted")),
            p_value(m.get("permutation_p_value")),
            p_value(m.get("permutation_p_value_adjusted")),
            "yes" if m.get("significant") else "no",
        ]
        for m in sig.get("metrics") or []
    ]
    sec.add(
        Table(
            [
                "Metric",
                "Pairs",
                "Mean Difference",
                "Bootstrap CI",
                "t p",
                "t p (corrected)",
                "Permutation p",
                "Permutation p (corrected)",
                "Significant",
            ],
            rows,
            numeric=(1, 2, 4, 5, 6, 7),
        )
    )
    return sec


def _metric_panels(names: list[str], values: dict[str, dict[str, float]]) -> list[dict]:
    """Metrics on a 0..1 scale in one panel, the others (novelty, revenue, ...) in a second."""
    bounded = [n for n in names if all(0 <= v.get(n, 0) <= 1 for v in values.values())]
    other = [n for n in names if n not in bounded]
    panels = []
    for group, title in ((bounded, "metrics on a 0-1 scale"), (other, "other metrics")):
        if group:
            series = {seg: [vals.get(n, 0.0) for n in group] for seg, vals in values.items()}
            panels.append({"title": title, "categories": group, "series": series})
    return panels
