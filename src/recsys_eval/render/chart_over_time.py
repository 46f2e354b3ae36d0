"""The lift-over-time chart (kind "over_time"): one panel per metric, for each non-control variant
its cumulative absolute lift by time bucket with the fixed-horizon interval (dark band) and the
always-valid interval (light band) around it and a dashed line at 0. Drawn like charts.py (inline
SVG text from matplotlib; every label is escaped by matplotlib's SVG writer)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from recsys_eval.render.document import Chart

COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"]
MAX_TICKS = 8


def draw_over_time(chart: Chart) -> Figure:
    panels: list[dict[str, Any]] = chart.data["panels"]
    labels: list[str] = chart.data["buckets"]
    fig = Figure(figsize=(7.5, 0.6 + 2.4 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    fig.suptitle(chart.title, x=0.01, ha="left", fontsize=10, fontweight="bold")
    step = max(1, -(-len(labels) // MAX_TICKS))
    for ax, panel in zip(axes, panels, strict=True):
        for i, (variant, points) in enumerate(panel["series"].items()):
            color = COLORS[i % len(COLORS)]
            xs = [p["x"] for p in points]
            for key, alpha in (("sequential", 0.15), ("fixed", 0.3)):
                lows = [p[key][0] for p in points]
                highs = [p[key][1] for p in points]
                ax.fill_between(xs, lows, highs, color=color, alpha=alpha, linewidth=0)
            ax.plot(xs, [p["lift"] for p in points], color=color, marker="o", markersize=3,
                    linewidth=1.5, label=str(variant)[:40])  # fmt: skip
        ax.axhline(0.0, color="#555555", linewidth=1, linestyle="--")
        ax.set_title(str(panel["title"])[:60], loc="left", fontweight="normal")
        ticks = list(range(0, len(labels), step))
        ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=30 if len(ticks) > 4 else 0,
                      ha="right" if len(ticks) > 4 else "center")  # fmt: skip
        ax.set_xlim(-0.3, max(len(labels) - 0.7, 0.3))
        ax.set_ylabel("absolute lift")
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        if panel["series"]:
            ax.legend(loc="upper left", fontsize=8, frameon=False)
    return fig
