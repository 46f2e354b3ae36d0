"""`recsys-eval load`: validate JSONL files and load them into the DuckDB raw tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from recsys_eval import loader, privacy, schema_registry, warehouse
from recsys_eval.errors import EXIT_ERROR, EXIT_OK, RecsysEvalError
from recsys_eval.inputs import check_input_file
from recsys_eval.redaction import redact_text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="validate JSONL files and load them into a DuckDB warehouse",
        description="Validate JSONL files against a schema and load them into raw.<table> of a "
        "DuckDB file, one transaction per file. Invalid lines go to raw.quarantine; a file "
        "already in raw.load_ledger (same sha256 and table) is skipped.",
    )
    parser.add_argument("--schema", required=True, metavar="NAME", help="e.g. exposure.v1")
    parser.add_argument("--input", required=True, nargs="+", metavar="FILE", help="JSONL file(s)")
    parser.add_argument("--database", required=True, metavar="DB.duckdb", help="DuckDB file")
    parser.add_argument(
        "--table",
        metavar="NAME",
        help="target table in schema raw (default: exposures, outcomes, assignments, ranklists, "
        "or the schema name with '_' for other schemas)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress display (default: on a TTY)"
    )
    add_pii_guard_flag(parser)
    parser.set_defaults(func=run)


def add_pii_guard_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pii-guard",
        choices=privacy.PII_MODES,
        default=None,
        help="check identifiers and context values for email addresses and phone numbers: "
        "off (default), flag (warn with counts per field, never the values) or reject "
        "(quarantine the line with rule pii); see docs/privacy.md",
    )


def _summary(res: loader.LoadResult) -> str:
    if res.skipped_duplicate:
        return (
            f"{res.source_file}: already loaded (load_id {res.load_id}, sha256 "
            f"{res.file_sha256[:12]}): nothing new"
        ) + _growth_note(res)
    rate = res.lines_per_second
    notes = []
    if res.bom:
        notes.append("UTF-8 BOM stripped")
    if res.crlf_lines:
        notes.append(f"{res.crlf_lines:,} CRLF line(s)")
    if res.lone_cr_lines:
        notes.append(
            f"{res.lone_cr_lines:,} line(s) with a lone CR: lines end in a lone CR (classic Mac "
            "OS)? convert with `tr '\\r' '\\n'`"
        )
    note = f" ({'; '.join(notes)})" if notes else ""
    text = (
        f"{res.source_file} -> raw.{res.table}: {res.lines_read:,} lines read, "
        f"{res.rows_loaded:,} loaded, {res.rows_quarantined:,} quarantined, "
        f"{res.blank_lines:,} blank, {res.seconds:.2f} s, {rate:,.0f} lines/s{note}"
    )
    if res.appends_to is not None:
        last = res.first_line_no + res.lines_read - 1
        lines = f"lines {res.first_line_no:,}-{last:,}" if res.lines_read else "no new line"
        text += (
            f"\n  appended: loaded {lines}; the first {res.start_byte:,} bytes were loaded by "
            f"load {res.appends_to}"
        )
    return text + _growth_note(res)


def _growth_note(res: loader.LoadResult) -> str:
    if res.size_at_end <= res.end_byte:
        return ""
    return (
        f"\n  note: the file is now {res.size_at_end:,} bytes; this load took its first "
        f"{res.end_byte:,} (complete lines present when it started); load it again to add the "
        "rest once it is complete"
    )


def run(args: argparse.Namespace) -> int:
    ref = schema_registry.resolve(args.schema)
    table = loader.check_table_name(args.table or loader.default_table(ref.name))
    files = [Path(f) for f in args.input]
    for f in files:
        if not f.exists():
            raise RecsysEvalError(f"input file not found: {f}")
        check_input_file(f, "--input")  # a FIFO, device, directory or /proc file: before any work
    progress = not args.no_progress and sys.stderr.isatty()
    pii_guard = privacy.check_mode(args.pii_guard)
    with warehouse.private_files():  # the database and its WAL are created 0600
        return _load_all(args, files, table, progress, pii_guard)


def _load_all(
    args: argparse.Namespace, files: list[Path], table: str, progress: bool, pii_guard: str
) -> int:
    con = warehouse.connect(args.database)
    status = EXIT_OK
    try:
        for f in files:
            try:
                res = loader.load_file(
                    con, args.schema, f, table, progress=progress, pii_guard=pii_guard
                )
            except RecsysEvalError as exc:
                print(f"error: {redact_text(str(exc))}", file=sys.stderr)
                status = EXIT_ERROR
                continue
            print(redact_text(_summary(res)), file=sys.stderr)
            if res.pii_findings:
                action = "quarantined" if pii_guard == "reject" else "flagged"
                print(f"  warning: {privacy.summary(res.pii_findings, action)}", file=sys.stderr)
            if res.rows_quarantined:
                print(
                    f"  {res.rows_quarantined:,} invalid line(s) quarantined; see them with: "
                    f"select * from raw.quarantine where load_id = '{res.load_id}'",
                    file=sys.stderr,
                )
    finally:
        con.close()
    return status
