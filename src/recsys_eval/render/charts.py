"""Charts for the HTML report, drawn with matplotlib (Agg-free SVG canvas, no pyplot state) and
returned as inline <svg> text: text stays text (`svg.fonttype: none`), ids come from a fixed salt
per chart and no date is written, so the same data always gives the same bytes."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # never a GUI backend, even when imported first by a test

from matplotlib import rc_context
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from recsys_eval.render.chart_over_time import draw_over_time
from recsys_eval.render.document import Chart

# the report's palette (colour-blind safe: Okabe-Ito)
COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
SIGNIFICANT, NOT_SIGNIFICANT = "#D55E00", "#0072B2"
RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}
MAX_LABEL = 48  # characters of a category label before it is shortened
LABELLED_BARS = 40  # bar charts with at most this many bars print each bar's value


def render_chart(chart: Chart, index: int) -> str:
    """The chart as an <svg> element (no XML prolog), ids salted with its position."""
    draw = {
        "forest": _forest,
        "grouped_bars": _grouped_bars,
        "weights": _weights,
        "over_time": draw_over_time,
    }[chart.kind]
    with rc_context({**RC, "svg.hashsalt": f"recsys-eval-chart-{index}"}):
        fig = draw(chart)
        buf = io.StringIO()
        FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    # a fixed, unique root id and an accessible name (the page's CSS scales it down to fit)
    return svg.replace(
        "<svg ",
        f'<svg id="chart-{index}" role="img" aria-label="{_attr(chart.alt or chart.title)}" ',
        1,
    )


def _attr(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


def _short(label: str, width: int = MAX_LABEL) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _value_label(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 10 else f"{value:.3g}"


def _forest(chart: Chart) -> Figure:
    rows: list[dict[str, Any]] = chart.data["rows"]
    fig = Figure(figsize=(7.5, 0.9 + 0.38 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    for y, r in zip(ys, rows, strict=True):
        color = SIGNIFICANT if r.get("significant") else NOT_SIGNIFICANT
        ax.plot([r["lower"], r["upper"]], [y, y], color=color, linewidth=2, solid_capstyle="butt")
        ax.plot([r["value"]], [y], marker="o", color=color, markersize=6)
    if chart.data.get("zero_line"):
        ax.axvline(0.0, color="#555555", linewidth=1, linestyle="--")
    ax.set_yticks(ys, [_short(r["label"]) for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(chart.data.get("xlabel", "estimate and confidence interval"))
    ax.set_title(chart.title, loc="left")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    if any(r.get("significant") for r in rows):
        ax.plot([], [], color=SIGNIFICANT, marker="o", label="significant")
        ax.plot([], [], color=NOT_SIGNIFICANT, marker="o", label="not significant")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def _grouped_bars(chart: Chart) -> Figure:
    panels: list[dict[str, Any]] = chart.data["panels"]
    horizontal = len(panels) < 3  # stacked panels of horizontal bars; 3+ panels side by side
    if horizontal:
        heights = [
            max(1.0, 0.5 + 0.2 * len(p["categories"]) * max(len(p["series"]), 1)) for p in panels
        ]
        fig = Figure(figsize=(7.5, 0.4 + sum(heights)), layout="constrained")
        axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    else:
        fig = Figure(figsize=(7.5, 2.8), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
    fig.suptitle(chart.title, x=0.01, ha="left", fontsize=10, fontweight="bold")
    for ax, panel in zip(axes, panels, strict=True):
        # side-by-side panels are narrow: shorter labels, slanted when they are not tiny
        cats = [_short(str(c), MAX_LABEL if horizontal else 20) for c in panel["categories"]]
        series = panel["series"]
        n = max(len(series), 1)
        height = 0.8 / n
        for i, (name, values) in enumerate(series.items()):
            offsets = [c - 0.4 + height * (i + 0.5) for c in range(len(cats))]
            color = COLORS[i % len(COLORS)]
            if horizontal:
                bars = ax.barh(offsets, values, height=height, label=_short(str(name)), color=color)
            else:
                bars = ax.bar(offsets, values, width=height, label=_short(str(name)), color=color)
            if len(cats) * n <= LABELLED_BARS:  # few bars: print the value (0 bars stay visible)
                ax.bar_label(bars, labels=[_value_label(v) for v in values], padding=2, fontsize=7)
        if horizontal:
            ax.set_yticks(range(len(cats)), cats)
            ax.invert_yaxis()
            ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        else:
            slant = len(cats) > 3 or max(len(c) for c in cats) > 10
            ax.set_xticks(
                range(len(cats)),
                cats,
                rotation=30 if slant else 0,
                ha="right" if slant else "center",
            )
            ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.margins(x=0.12) if horizontal else ax.margins(y=0.12)
        ax.set_axisbelow(True)
        ax.set_title(_short(str(panel.get("title", ""))), loc="left", fontweight="normal")
    if max(len(p["series"]) for p in panels) > 1:  # one legend for all panels, under them
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=min(len(labels), 4),
            fontsize=8,
            frameon=False,
        )
    return fig


def _weights(chart: Chart) -> Figure:
    """Per scope: mean, p95 and max of the importance weights (a dashed line at 1, the mean a
    correct logging policy gives) and the effective sample size as a share of the samples (a
    dashed line at 0.2, the low-ESS warning level)."""
    scopes: dict[str, dict[str, Any]] = chart.data["scopes"]
    labels = [_short(str(s)) for s in scopes]
    fig = Figure(figsize=(7.5, max(2.0, 1.2 + 0.45 * len(scopes))), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    fig.suptitle(chart.title, x=0.01, ha="left", fontsize=10, fontweight="bold")
    stats = ["mean", "p95", "max"]
    height = 0.8 / len(stats)
    for i, stat in enumerate(stats):
        values = [float(ws.get(stat, 0.0)) for ws in scopes.values()]
        offsets = [c - 0.4 + height * (i + 0.5) for c in range(len(labels))]
        bars = left.barh(offsets, values, height=height, color=COLORS[i], label=stat)
        left.bar_label(bars, labels=[_value_label(v) for v in values], padding=2, fontsize=7)
    left.axvline(1.0, color="#555555", linewidth=1, linestyle="--")
    left.set_yticks(range(len(labels)), labels)
    left.invert_yaxis()
    left.set_xlabel("importance weight")
    handles, names = left.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    ess = [
        float(ws.get("effective_sample_size", 0.0)) / float(ws["count"]) if ws.get("count") else 0.0
        for ws in scopes.values()
    ]
    bars = right.barh(range(len(labels)), ess, height=0.5, color=COLORS[4])
    right.bar_label(bars, labels=[f"{v:.2f}" for v in ess], padding=2, fontsize=7)
    right.axvline(0.2, color="#D55E00", linewidth=1, linestyle="--")
    right.set_xlim(0, 1.15)
    left.margins(x=0.15)
    right.set_yticks(range(len(labels)), [""] * len(labels))
    right.invert_yaxis()
    right.set_xlabel("effective sample size / samples")
    for ax in (left, right):
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    return fig
