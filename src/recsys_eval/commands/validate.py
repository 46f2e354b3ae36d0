"""`recsys-eval validate --schema NAME|PATH --input FILE`: check a JSONL file against a schema.

Reference-compatible: prints nothing and exits 0 when every line is valid. Otherwise prints every
error of every bad line as `FILE:LINE: $.path: message [rule]` to stderr, then
`validation failed for N line(s)`, and exits 1. Under `--pii-guard flag|reject` no message
quotes a data value (`<string, 7 chars> is not of type 'integer'`: privacy.without_values); the
file name and messages are always redacted of secrets (recsys_eval.redaction).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recsys_eval import privacy, schema_registry
from recsys_eval.commands.load import add_pii_guard_flag
from recsys_eval.errors import EXIT_ERROR, EXIT_OK, RecsysEvalError
from recsys_eval.redaction import redact_text
from recsys_eval.validation import (
    LONE_CR_MESSAGE,
    MAX_LINE_BYTES,
    FileStats,
    LineError,
    LineTooLongInStream,
    RecordValidator,
    validate_file,
)

DEFAULT_MAX_ERRORS = 100


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validate a JSONL file against a JSON Schema contract",
        description="Validate every non-blank line of a JSONL file against a Draft-07 schema "
        "(exposure.v1, outcome.v1, assignment.v1, ranklist.v1, ... or a schema file path).",
    )
    parser.add_argument("--schema", required=True, metavar="NAME|PATH", help="schema name or path")
    parser.add_argument("--input", required=True, metavar="FILE", help="JSONL file to validate")
    parser.add_argument(
        "--max-errors",
        type=int,
        default=DEFAULT_MAX_ERRORS,
        metavar="N",
        help=f"report at most N invalid lines in detail (0: all; default {DEFAULT_MAX_ERRORS}); "
        "every invalid line is still counted",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: errors on stderr (default); json: one JSON summary on stdout",
    )
    add_pii_guard_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_errors < 0:
        raise RecsysEvalError("--max-errors must be 0 (all) or a positive number")
    ref = schema_registry.resolve(args.schema)
    path = Path(args.input)
    if not path.exists():
        raise RecsysEvalError(f"input file not found: {args.input}")
    if path.is_dir():
        raise RecsysEvalError(f"input is a directory, not a file: {args.input}")
    validator = RecordValidator(ref.schema)
    stats = FileStats()
    pii_mode = privacy.check_mode(args.pii_guard)
    pii_counts: dict[str, int] = {}

    def pii_check(line: bytes) -> list[LineError]:
        findings = privacy.scan_line(line)
        privacy.count(findings, pii_counts)
        return privacy.line_errors(findings) if pii_mode == "reject" else []

    extra = pii_check if pii_mode != "off" else None
    guarded = pii_mode != "off"
    name = redact_text(args.input)
    limit = args.max_errors or None
    shown = 0
    details: list[dict[str, Any]] = []
    try:
        for result in validate_file(path, validator, stats, extra_check=extra):
            if limit is not None and shown >= limit:
                continue
            shown += 1
            if args.format == "json":
                details.append(
                    {
                        "line": result.line_no,
                        "errors": [e.as_dict() for e in _shown(result.errors, guarded)],
                    }
                )
            else:
                for err in _shown(result.errors, guarded):
                    print(
                        f"{name}:{result.line_no}: {err.path}: {err.message} [{err.rule}]",
                        file=sys.stderr,
                    )
    except OSError as exc:
        raise RecsysEvalError(f"cannot read {args.input}: {exc.strerror or exc}") from exc
    except LineTooLongInStream as exc:
        raise RecsysEvalError(
            f"{args.input}:{exc.args[0]}: line too long: more than {MAX_LINE_BYTES:,} bytes "
            "(64 MiB) without a newline in a stream that is not a regular file; validation "
            "stopped here. Check that the input is JSONL, or save it to a file and validate that"
        ) from None

    if args.format == "json":
        summary = {
            "file": name,
            "schema": ref.name,
            "valid": stats.invalid == 0,
            "lines_read": stats.lines_read,
            "valid_lines": stats.valid,
            "invalid_lines": stats.invalid,
            "blank_lines": stats.blank,
            "crlf_lines": stats.crlf,
            "lone_cr_lines": stats.lone_cr,
            "bom": stats.bom,
            "invalid": details,
            "invalid_not_shown": stats.invalid - shown,
        }
        if pii_mode != "off":
            summary["pii_guard"] = {"mode": pii_mode, "findings": dict(sorted(pii_counts.items()))}
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    if pii_counts and args.format == "text":
        action = "rejected" if pii_mode == "reject" else "flagged"
        print(f"warning: {privacy.summary(pii_counts, action)}", file=sys.stderr)
    if stats.invalid == 0:
        return EXIT_OK
    if args.format == "text":
        if stats.invalid > shown:
            print(
                f"... {stats.invalid - shown} more invalid line(s) not shown "
                "(--max-errors 0 shows all)",
                file=sys.stderr,
            )
        if stats.bom:
            print("note: a UTF-8 BOM at the start of the file was ignored", file=sys.stderr)
        if stats.lone_cr:
            print(
                f"note: {stats.lone_cr:,} line(s) hold a lone CR; {LONE_CR_MESSAGE}",
                file=sys.stderr,
            )
        print(f"validation failed for {stats.invalid} line(s)", file=sys.stderr)
    return EXIT_ERROR


def _shown(errors: list[LineError], guarded: bool) -> list[LineError]:
    """The errors as printed: under a PII guard without any data value (the JSON path, the rule
    and a value-free message: privacy.without_values); secrets are always redacted."""
    if guarded:
        errors = [privacy.without_values(e) for e in errors]
    return [LineError(e.path, e.rule, redact_text(e.message)) for e in errors]
