"""Judging the rows of a SQL source (`recsys_eval.sql_sources`), in this process or in worker
processes.

`_Judge.rows` gives each row (one JSON document, or None for a NULL) the verdict the JSONL
loader gives a line: the accept-only msgspec pre-check (`fast_accept`), else the canonical
`RecordValidator`, then the PII guard. `judge_rows` writes the verdicts of one batch as the
loader's chunk files (`{"l": ROW INDEX, "d": DOC}` lines to insert, quarantine entries) and
returns a `loader._ChunkResult`.

A large source is judged by two worker processes (`python -m recsys_eval.sql_rows --worker`,
started by `loader._WorkerPool`, the JSONL loader's pool and protocol): the reading process
writes each batch to a file as frames (`frame`: each row its length, 8 bytes big-endian, then its
bytes; a NULL eight 0xff bytes: the very bytes the ledger's SHA-256 hashes) and sends the task;
a worker reads the frames back, judges them and answers with the result. The verdicts are
therefore the same whichever process judges a batch.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson

from recsys_eval import loader, privacy
from recsys_eval.errors import RecsysEvalError
from recsys_eval.fast_accept import fast_accept_for
from recsys_eval.loader import (
    _ChunkResult,
    _quarantine_entry,
    _quarantine_long,
    _Task,
    source_schema,
)
from recsys_eval.validation import (
    MAX_LINE_BYTES,
    QUARANTINE_PREFIX_BYTES,
    LineDigest,
    LineError,
    RecordValidator,
)

RULE_NULL = "null"
NULL_MESSAGE = "the row is NULL: the query's column holds no JSON document"
NULL_FRAME = b"\xff" * 8
ROWS_TASK = "sql_rows"  # the _Task kind of a batch of framed rows
# ... whose documents repeat no key (a Postgres jsonb column): fast_accept(unique_keys=True)
UNIQUE_ROWS_TASK = "sql_rows_unique_keys"


class _Judge:
    """Per-row verdicts, as the JSONL loader's chunk processing gives them for a line."""

    def __init__(
        self,
        schema: dict[str, Any],
        pii_mode: str,
        event_types: dict[str, str] | None = None,
        event_types_key: str = "event_types",
    ) -> None:
        self.event_types = event_types
        if event_types is not None:  # the rows as written; a valid one gets the contract's type
            loader._init_worker(schema, event_types, event_types_key)
            self.validator = RecordValidator(source_schema(schema, event_types), representable=True)
        else:
            self.validator = RecordValidator(schema, representable=True)
        self.fast = fast_accept_for(schema, event_types)
        self.fast_unique = fast_accept_for(schema, event_types, unique_keys=True)
        self.pii_mode = pii_mode
        self.pii: dict[str, int] = {}
        self.unmapped: dict[str, int] = {}  # event_type name -> rows (with event_types)

    def rows(
        self, rows: list[bytes | None], first: int, unique_keys: bool = False
    ) -> tuple[list[bytes], list[bytes]]:
        """(`{"l": INDEX, "d": DOC}` lines to insert, quarantine entries) for rows first, ...
        `unique_keys`: no document repeats a key (see fast_accept_for); the verdicts are the
        same, the accepted documents are stored as they are instead of re-encoded."""
        fast = self.fast_unique if unique_keys else self.fast
        out: list[bytes] = []
        bad: list[bytes] = []
        guard = self.pii_mode != "off"
        reject = self.pii_mode == "reject"
        for offset, row in enumerate(rows):
            index = first + offset
            if row is None:
                bad.append(_quarantine_entry(index, b"", 0, None, [_null_error()]))
                continue
            if len(row) > MAX_LINE_BYTES:
                digest = LineDigest(keep=QUARANTINE_PREFIX_BYTES + 4)
                digest.update(row)
                digest.update(b"\n")  # the digest holds back a trailing line ending
                bad.append(_quarantine_long(index, digest.finish()))
                continue
            encoded = fast(row) if fast is not None else None
            errors: list[LineError] = []
            if encoded is None:
                verdict = self.validator.check(row)
                if self.event_types is not None:
                    unmapped: list[str | None] = [None]
                    verdict = loader._map_event_type(verdict, unmapped)
                    if unmapped[0] is not None:
                        self.unmapped[unmapped[0]] = self.unmapped.get(unmapped[0], 0) + 1
                encoded = verdict.encoded
                errors = verdict.errors
            if encoded is None:
                bad.append(_quarantine_entry(index, row, len(row), None, errors))
                continue
            if guard:
                findings = privacy.scan_line(row)
                if findings:
                    privacy.count(findings, self.pii)
                    if reject:
                        errs = privacy.line_errors(findings)
                        bad.append(_quarantine_entry(index, row, len(row), None, errs))
                        continue
            out.append(b'{"l":%d,"d":%b}' % (index, encoded))
        return out, bad


def _null_error() -> LineError:
    return LineError("$", RULE_NULL, NULL_MESSAGE)


def frame(rows: list[bytes | None]) -> bytes:
    """The rows as the ledger hashes them: each its length (8 bytes, big-endian) and its bytes,
    a NULL as eight 0xff bytes."""
    parts: list[bytes] = []
    for row in rows:
        if row is None:
            parts.append(NULL_FRAME)
        else:
            parts.append(len(row).to_bytes(8, "big"))
            parts.append(row)
    return b"".join(parts)


def unframe(data: bytes) -> list[bytes | None]:
    """The rows of `frame(rows)`."""
    rows: list[bytes | None] = []
    pos, end = 0, len(data)
    while pos < end:
        head = data[pos : pos + 8]
        pos += 8
        if head == NULL_FRAME:
            rows.append(None)
            continue
        size = int.from_bytes(head, "big")
        rows.append(data[pos : pos + size])
        pos += size
    if pos != end:
        raise RecsysEvalError("internal error: a batch file of SQL rows is truncated")
    return rows


def judge_rows(judge: _Judge, rows: list[bytes | None], task: _Task) -> _ChunkResult:
    """Judge one batch (its first row's index is task.offset + 1) into the chunk files of
    task.tmp_dir; the result counts this batch only (PII findings, unmapped event types)."""
    judge.pii, judge.unmapped = {}, {}
    out, bad = judge.rows(rows, task.offset + 1, task.kind == UNIQUE_ROWS_TASK)
    res = _ChunkResult(task.index, lines=len(rows), valid=len(out), quarantined=len(bad))
    res.pii, res.unmapped = judge.pii, judge.unmapped
    if out:
        res.data_path = os.path.join(task.tmp_dir, f"c{task.index:07d}.ndjson")
        with open(res.data_path, "wb") as fh:
            fh.write(b"\n".join(out))  # (joined once: no second copy of ~5 MB)
            fh.write(b"\n")
    if bad:
        res.quarantine_path = os.path.join(task.tmp_dir, f"q{task.index:07d}.ndjson")
        with open(res.quarantine_path, "wb") as fh:
            fh.write(b"\n".join(bad))
            fh.write(b"\n")
    return res


def judge_file(judge: _Judge, task: _Task) -> _ChunkResult:
    """A worker's task: the framed rows in task.path (removed once read)."""
    with open(task.path, "rb") as fh:
        data = fh.read()
    os.unlink(task.path)
    if len(data) != task.length:
        raise RecsysEvalError("internal error: a batch file of SQL rows has the wrong size")
    return judge_rows(judge, unframe(data), task)


def _worker_main() -> int:
    """Worker process: the first stdin line is the schema (and mapping), then one task a line."""
    judges: list[_Judge] = []  # made on the first task (its PII mode)

    def handle(setup: dict[str, Any], line: bytes) -> Any:
        task = _Task(**orjson.loads(line))
        if not judges:
            judges.append(
                _Judge(setup["schema"], task.pii_mode, setup["event_types"], setup["key"])
            )
        return judge_file(judges[0], task)

    return loader.serve_worker(handle, "SQL source worker")


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_worker_main())
