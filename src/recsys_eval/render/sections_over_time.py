"""The report's lift-over-time and safe-to-peek sections, from `experiment.over_time` and
`experiment.sequential` (recsys_eval.experiment_over_time)."""

from __future__ import annotations

from typing import Any

from recsys_eval.render.document import Chart, Paragraph, Section, Table
from recsys_eval.render.numbers import count, fixed, interval, p_value, signed

HOW_TO_READ = (
    "Which number to read: while the experiment runs (looking every day), read the always-valid "
    "interval and the sequential p-value: they stay valid however often you look. The "
    "fixed-horizon interval and p-value are valid only once, at the planned end (the sample size "
    "you planned for); read daily, they cross zero by chance far more often than alpha."
)


def _bucket_label(stamp: str, bucket: str) -> str:
    return stamp[:13].replace("T", " ") + "h" if bucket == "hour" else stamp[:10]


def _lift_row(entry: dict[str, Any]) -> list[str]:
    return [
        str(entry.get("metric", "")),
        str(entry.get("variant", "")),
        signed(entry.get("absolute_lift")),
        interval(entry.get("absolute_lift_ci"), signs=True),
        p_value(entry.get("p_value")),
        interval(entry.get("absolute_lift_sequential_ci"), signs=True),
        p_value(entry.get("sequential_p_value")),
        signed(entry.get("relative_lift")),
        interval(entry.get("relative_lift_sequential_ci"), signs=True),
    ]


def _series_row(point: dict[str, Any], bucket: str) -> list[str]:
    head = [_bucket_label(point["bucket_start"], bucket), str(point["metric"])]
    rest = [str(point["variant"]), count(point.get("units")), fixed(point.get("rate"))]
    return [*head, *rest, *_lift_row(point)[2:7]]


LIFT_HEADERS = [
    "Metric",
    "Variant",
    "Absolute lift",
    "Fixed-horizon CI",
    "Fixed p",
    "Always-valid CI",
    "Sequential p",
    "Relative lift",
    "Always-valid CI (relative)",
]


def _chart(block: dict[str, Any]) -> Chart | None:
    series = [p for p in block["series"] if "absolute_lift" in p]
    if not series:
        return None
    starts = sorted({p["bucket_start"] for p in block["series"]})
    index = {s: i for i, s in enumerate(starts)}
    panels = []
    for metric in dict.fromkeys(p["metric"] for p in series):
        lines: dict[str, list[dict[str, Any]]] = {}
        for p in series:
            fixed_ci, seq_ci = p.get("absolute_lift_ci"), p.get("absolute_lift_sequential_ci")
            if p["metric"] != metric or not fixed_ci or not seq_ci:
                continue
            lines.setdefault(p["variant"], []).append(
                {
                    "x": index[p["bucket_start"]],
                    "lift": p["absolute_lift"],
                    "fixed": (fixed_ci["lower"], fixed_ci["upper"]),
                    "sequential": (seq_ci["lower"], seq_ci["upper"]),
                }
            )
        panels.append(
            {"title": f"{metric} (vs {series[0].get('control_variant', '')})", "series": lines}
        )
    return Chart(
        "over_time",
        "Cumulative lift over time",
        {"panels": panels, "buckets": [_bucket_label(s, block["bucket"]) for s in starts]},
        alt="Cumulative absolute lift per variant by time bucket with fixed-horizon (dark) and "
        "always-valid (light) intervals",
    )


def over_time_sections(exp: dict[str, Any]) -> list[Section]:
    out = []
    seq = exp.get("sequential")
    if isinstance(seq, dict):
        sec = Section("Safe to peek (sequential)", "sequential", level=3)
        default = " (default)" if seq.get("tuning_parameter_source") == "default" else ""
        sec.add(
            Paragraph(
                f"Always-valid intervals at level {fixed(seq.get('level'), 2)} as of the bucket "
                f"starting {seq.get('as_of', '')} (confidence sequence, tuning parameter "
                f"{count(seq.get('tuning_parameter'))}{default}). {HOW_TO_READ}"
            ),
            Table(LIFT_HEADERS, [_lift_row(t) for t in seq.get("tests", [])], numeric=(2, 4, 6, 7)),
        )
        srm = seq.get("srm")
        if isinstance(srm, dict):
            verdict = "MISMATCH" if srm.get("mismatch") else "no mismatch"
            sec.add(
                Paragraph(
                    f"Sequential SRM (Dirichlet-multinomial Bayes factor, concentration "
                    f"{count(srm.get('dirichlet_concentration'))}): "
                    f"p = {p_value(srm.get('p_value'))} against alpha {fixed(srm.get('alpha'))}: "
                    f"{verdict}."
                )
            )
        out.append(sec)
    block = exp.get("over_time")
    if isinstance(block, dict) and block.get("series"):
        sec = Section("Lift over time", "lift-over-time", level=3)
        default = " (default)" if block.get("bucket_source") == "default" else ""
        sec.add(
            Paragraph(
                f"Cumulative per {block['bucket']}{default}: each row counts every request up "
                f"to the end of its bucket. Dark band: fixed-horizon "
                f"{fixed(block.get('ci_level'), 2)} "
                f"interval; light band: always-valid {fixed(block.get('sequential_level'), 2)} "
                f"interval. {HOW_TO_READ}"
            ),
            _chart(block),
            Table(
                ["Bucket start", "Metric", "Variant", "Units", "Rate", *LIFT_HEADERS[2:7]],
                [_series_row(p, block["bucket"]) for p in block["series"]],
                title="Cumulative metrics and lifts by bucket",
                numeric=(3, 4, 5, 7, 9),
            ),
        )
        out.append(sec)
    return out
