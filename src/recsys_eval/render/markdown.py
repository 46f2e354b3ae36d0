"""Document -> Markdown (GitHub-flavoured): the reference's layout (§8.3), charts left out (their
numbers are in the tables next to them). Text from the report is escaped, so a segment named
`<script>` or `a|b` cannot inject HTML or break a table."""

from __future__ import annotations

import re

from recsys_eval.render.document import Bullets, Chart, Document, Paragraph, Section, Table

_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "<": "&lt;",
        ">": "&gt;",
        "*": "\\*",
        "`": "\\`",
        "\n": " ",
        "\r": " ",
    }
)


_LINK = re.compile(r"\](?=[(\[:])")  # the `](`, `][` and `]:` of links and link definitions


def escape(text: str) -> str:
    """Report text as literal Markdown: no HTML, no emphasis, no links, no table breaks (plain
    brackets stay, so intervals read `[0.1, 0.2]`)."""
    return _LINK.sub(r"\\]", str(text).translate(_ESCAPES))


def _table(table: Table) -> list[str]:
    lines = [f"**{escape(table.title)}**", ""] if table.title else []
    lines.append("| " + " | ".join(escape(h) for h in table.headers) + " |")
    lines.append(
        "|"
        + "|".join(" ---: " if i in table.numeric else " --- " for i in range(len(table.headers)))
        + "|"
    )
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def _section(sec: Section) -> list[str]:
    lines = ["#" * sec.level + " " + escape(sec.title), ""]
    for block in sec.blocks:
        if isinstance(block, Paragraph):
            lines += [escape(block.text), ""]
        elif isinstance(block, Bullets):
            if block.title:
                lines += [f"### {escape(block.title)}", ""]
            lines += [f"- {escape(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            lines += _table(block)
        elif isinstance(block, Chart):
            continue  # charts are HTML-only; the section's tables carry the same numbers
    return lines


def render_markdown(doc: Document) -> str:
    lines = [f"# {escape(doc.title)}", ""]
    lines += [f"- {escape(k)}: {escape(v)}" for k, v in doc.meta]
    verdict = doc.verdict
    lines += ["", f"> **Verdict: {escape(verdict.label)}** - {escape(verdict.headline)}"]
    if verdict.reasons:
        lines.append(">")
        lines += [f"> - {escape(r)}" for r in verdict.reasons]
    if verdict.warnings:
        lines += [">", "> Warnings:"] + [f"> - {escape(w)}" for w in verdict.warnings]
    lines.append("")
    for sec in doc.sections:
        lines += _section(sec)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
