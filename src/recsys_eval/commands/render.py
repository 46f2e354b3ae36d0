"""`recsys-eval render --report R.json --format html --output R.html`: write the Markdown or HTML
view of an existing report.v1 JSON (validated first), so any saved report can be read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recsys_eval.errors import ConfigError, RecsysEvalError
from recsys_eval.render import FORMATS, render_report
from recsys_eval.report import check_writable, validate_against, write_atomic


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="write the Markdown or HTML view of a report JSON",
        description="Render a report.v1 JSON as Markdown (md, markdown) or as one self-contained "
        "HTML page with charts (html). The output file is written with mode 0600.",
    )
    p.add_argument("--report", type=Path, required=True, help="report.v1 JSON to render")
    p.add_argument("--format", default="html", help="md, markdown or html (default html)")
    p.add_argument("--output", type=Path, required=True, help="where to write the result")
    p.set_defaults(func=main)


def read_report(path: Path) -> dict:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecsysEvalError(f"report not found: {path}") from None
    except IsADirectoryError:
        raise RecsysEvalError(f"{path}: is a directory, not a report") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecsysEvalError(f"{path}: not a JSON report: {exc}") from None
    if not isinstance(report, dict):
        raise RecsysEvalError(f"{path}: not a report (the JSON is not an object)")
    # report.v1 (the reference's contract), then report.v2 (its OPE and interleaving sections typed)
    for name in ("report.v1", "report.v2"):
        try:
            validate_against(report, name)
        except RecsysEvalError as exc:
            detail = str(exc).split("invalid: ", 1)[-1]
            raise RecsysEvalError(
                f"{path}: not a valid report.v1 document ({name} rules): {detail}"
            ) from None
    return report


def main(args: argparse.Namespace) -> int:
    fmt = (args.format or "").strip().lower()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {args.format!r} (md, markdown, html)")
    check_writable(args.output)  # a symbolic link, a device or a read-only folder: before work
    report = read_report(args.report)
    write_atomic(args.output, render_report(report, fmt))
    return 0
