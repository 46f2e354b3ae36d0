"""Markdown and HTML reports from a report.v1 dict: `render_report(report, fmt)`.

sections.py turns the report into a format-neutral Document (verdict first, then the evidence);
markdown.py and html.py lay it out; charts.py draws the HTML charts with matplotlib."""

from __future__ import annotations

from typing import Any

from recsys_eval.errors import RecsysEvalError

FORMATS = ("md", "markdown", "html")


def render_report(report: dict[str, Any], fmt: str) -> str:
    """The report as Markdown (`md` / `markdown`) or a self-contained HTML page (`html`)."""
    from recsys_eval.render.sections import build_document

    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise RecsysEvalError(f"unknown render format {fmt!r} (md, markdown, html)")
    doc = build_document(report)
    if fmt == "html":
        from recsys_eval.render.html import render_html

        return render_html(doc)
    from recsys_eval.render.markdown import render_markdown

    return render_markdown(doc)
