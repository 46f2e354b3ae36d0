"""Validated, transactional JSONL loading into the DuckDB raw tables (see docs/architecture.md).

One file is one load and one transaction: its rows, its quarantine rows and its ledger row commit
together or not at all. The file is streamed in chunks of whole lines; each chunk is validated
(in two worker processes for large files), its valid records are written as
`{"l": LINE, "d": RECORD}` to a temporary NDJSON file that DuckDB's `read_json` inserts with
explicit column types, and its invalid lines go to `raw.quarantine` with every error.
`lines_read = rows_loaded + rows_quarantined + blank_lines` always holds.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from recsys_eval import privacy, schema_registry, tempdirs
from recsys_eval.errors import RecsysEvalError
from recsys_eval.fast_accept import fast_accept_for
from recsys_eval.validation import (
    BOM,
    JSON_WS,
    MAX_LINE_BYTES,
    QUARANTINE_PREFIX_BYTES,
    RULE_LINE_LENGTH,
    RULE_REPRESENTABLE,
    TOO_DEEP_TO_STORE,
    LineDigest,
    LineError,
    LongLine,
    RecordValidator,
    Verdict,
    bounded_prefix,
    encode,
    has_lone_cr,
    iter_bounded_lines,
    with_line_ending_hint,
)

if TYPE_CHECKING:  # the validation workers never import DuckDB (~0.15 CPU-s each)
    import duckdb

RAW_SCHEMA = "raw"
TABLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
CHUNK_BYTES = 16 << 20
# Rows per insert. The main process inserts a batch as soon as its chunks are validated, while the
# workers go on with the next chunks: at 1M exposures (633 MB, 2 workers, load 17-19) the file
# loaded in 82-108 s with 250k-row batches vs 97-120 s with one insert after all the validation
# (2M rows), the same CPU (13.7-14.0 vs 14.2-14.5 s). Far fewer rows per insert cost more (per-chunk
# inserts were 2-3x slower); a file under 250k rows still gets one insert.
BATCH_ROWS = 250_000
PARALLEL_MIN_BYTES = 24 << 20
HASH_BLOCK = 8 << 20
SCAN_BLOCK = 1 << 20  # newline search and long-line streaming
MAX_OBJECT_SIZE = 256 << 20  # DuckDB read_json's limit for one object of the temporary files
RESERVED_TABLES = frozenset({"quarantine", "load_ledger"})

DEFAULT_TABLES = {
    "exposure.v1": "exposures",
    "outcome.v1": "outcomes",
    "assignment.v1": "assignments",
    "ranklist.v1": "ranklists",
    "interleaved_exposure.v1": "interleaved_exposures",
}

LINEAGE_COLUMNS = [
    ("load_id", "varchar"),
    ("load_seq", "bigint"),
    ("source_file", "varchar"),
    ("line_no", "bigint"),
]

_TS = "timezone('UTC', try_cast(upper(d.ts) as timestamptz))"
_ITEM = (
    "struct(item_id varchar, rank bigint, propensity double, logging_propensity double, "
    "target_propensity double)"
)
_MAP = "map(varchar, varchar)"


@dataclass(frozen=True)
class Layout:
    """Columns of a raw table (after the lineage columns) and how to read them from `d`."""

    name: str
    columns: tuple[tuple[str, str, str, str], ...]  # (column, table type, read type, select expr)
    payload: bool = False

    @property
    def has_ts(self) -> bool:
        return any(c[0] == "ts" for c in self.columns)

    def read_type(self) -> str:
        if self.payload:
            return "json"
        fields = ", ".join(f"{c[0]} {c[2]}" for c in self.columns)
        return f"struct({fields})"


def _col(name: str, typ: str) -> tuple[str, str, str, str]:
    if name == "ts":
        return ("ts", "timestamp", "varchar", _TS)
    return (name, typ, typ, f"d.{name}")


LAYOUTS = {
    "exposure.v1": Layout(
        "exposure",
        (
            _col("request_id", "varchar"),
            _col("user_id", "varchar"),
            _col("ts", ""),
            _col("items", f"{_ITEM}[]"),
            _col("context", _MAP),
            _col("latency_ms", "double"),
            _col("error", "boolean"),
        ),
    ),
    "outcome.v1": Layout(
        "outcome",
        (
            _col("request_id", "varchar"),
            _col("user_id", "varchar"),
            _col("item_id", "varchar"),
            _col("event_type", "varchar"),
            _col("value", "double"),
            _col("ts", ""),
        ),
    ),
    "assignment.v1": Layout(
        "assignment",
        (
            _col("experiment_id", "varchar"),
            _col("variant", "varchar"),
            _col("request_id", "varchar"),
            _col("user_id", "varchar"),
            _col("ts", ""),
            _col("context", _MAP),
        ),
    ),
    "ranklist.v1": Layout(
        "ranklist",
        (
            _col("request_id", "varchar"),
            _col("user_id", "varchar"),
            _col("ts", ""),
            _col("items", "varchar[]"),
            _col("context", _MAP),
        ),
    ),
    "interleaved_exposure.v1": Layout(
        "interleaved_exposure",
        (
            _col("request_id", "varchar"),
            _col("user_id", "varchar"),
            _col("ts", ""),
            _col("items", "struct(item_id varchar, rank bigint, team varchar)[]"),
            _col("algorithm", "varchar"),
            _col("context", _MAP),
        ),
    ),
}
PAYLOAD_LAYOUT = Layout("payload", (("payload", "varchar", "json", "d::varchar"),), payload=True)

RAW_TABLES: dict[str, Layout] = {
    "exposures": LAYOUTS["exposure.v1"],
    "outcomes": LAYOUTS["outcome.v1"],
    "assignments": LAYOUTS["assignment.v1"],
    "ranklists": LAYOUTS["ranklist.v1"],
    "ranker_a": LAYOUTS["ranklist.v1"],
    "ranker_b": LAYOUTS["ranklist.v1"],
    "interleaved_exposures": LAYOUTS["interleaved_exposure.v1"],
}

QUARANTINE_DDL = """
create table if not exists raw.quarantine (
    load_id varchar, load_seq bigint, source_file varchar, line_no bigint,
    schema_name varchar, target_table varchar, raw_text varchar, errors varchar,
    error_count integer, quarantined_at timestamp
)"""
# raw_text keeps at most the first QUARANTINE_PREFIX_BYTES of a line (raw_truncated);
# line_bytes and line_sha256 describe the whole line (without its line ending and BOM).
QUARANTINE_ADDED = (
    ("line_bytes", "bigint"),
    ("line_sha256", "varchar"),
    ("raw_truncated", "boolean"),
)
QUARANTINE_COLUMNS = (
    "load_id, load_seq, source_file, line_no, schema_name, target_table, raw_text, errors, "
    "error_count, quarantined_at, line_bytes, line_sha256, raw_truncated"
)

LEDGER_DDL = """
create table if not exists raw.load_ledger (
    load_seq bigint, load_id varchar, schema_name varchar, target_table varchar,
    source_file varchar, file_sha256 varchar, file_size bigint, lines_read bigint,
    rows_loaded bigint, rows_quarantined bigint, blank_lines bigint,
    started_at timestamp, finished_at timestamp
)"""
# A ledger row describes exactly the bytes loaded: file_sha256 and file_size are those of the
# file's first file_size bytes; this load read bytes [start_byte, file_size) (bytes_loaded), whose
# lines are first_line_no, ... (lines_read of them). appends_to: the load whose prefix it extends.
LEDGER_ADDED = (
    ("start_byte", "bigint"),
    ("bytes_loaded", "bigint"),
    ("first_line_no", "bigint"),
    ("appends_to", "varchar"),
    # outcome.v1 with a mapping of event names (event_types): the mapping as canonical JSON
    # ({"tap": "click", ...}, null without one) and the lines whose name it lacks, per name.
    ("event_types", "varchar"),
    ("unmapped_event_types", "varchar"),
)
LEDGER_COLUMNS = (
    "load_seq, load_id, schema_name, target_table, source_file, file_sha256, file_size, "
    "lines_read, rows_loaded, rows_quarantined, blank_lines, started_at, finished_at, "
    "start_byte, bytes_loaded, first_line_no, appends_to, event_types, unmapped_event_types"
)
RULE_UNMAPPED_EVENT_TYPE = "unmapped_event_type"


@dataclass
class LoadResult:
    load_id: str
    load_seq: int
    table: str
    source_file: str
    file_sha256: str
    lines_read: int
    rows_loaded: int
    rows_quarantined: int
    blank_lines: int
    skipped_duplicate: bool
    seconds: float
    bom: bool = False
    crlf_lines: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    # PII guard findings, "field|kind" -> count (flag mode: loaded; reject mode: quarantined).
    pii_findings: dict[str, int] = field(default_factory=dict)
    lone_cr_lines: int = 0
    # The bytes [start_byte, end_byte) of the file were read; lines first_line_no, ... of it.
    start_byte: int = 0
    end_byte: int = 0
    first_line_no: int = 1
    appends_to: str | None = None  # the load whose first start_byte bytes this one extends
    size_at_start: int = 0
    size_at_end: int = 0
    # With a mapping of event names (outcome.v1): lines whose event_type it lacks, per name
    # (quarantined with rule unmapped_event_type); for a skipped file, those of its earlier load.
    unmapped_event_types: dict[str, int] = field(default_factory=dict)

    @property
    def lines_per_second(self) -> float:
        return self.lines_read / self.seconds if self.seconds > 0 else 0.0


def default_table(schema_name: str) -> str:
    """exposure.v1 -> exposures, ...; any other schema -> its name with dots/dashes as `_`."""
    if schema_name in DEFAULT_TABLES:
        return DEFAULT_TABLES[schema_name]
    return re.sub(r"[.\-]", "_", schema_name.lower())


def layout_for(schema_name: str) -> Layout:
    return LAYOUTS.get(schema_name, PAYLOAD_LAYOUT)


def check_table_name(table: str) -> str:
    if not TABLE_RE.match(table):
        raise RecsysEvalError(
            f"invalid table name {table!r}: use lowercase letters, digits and '_', starting "
            "with a letter, at most 63 characters"
        )
    if table in RESERVED_TABLES:
        raise RecsysEvalError(f"table name {table!r} is reserved for the loader's bookkeeping")
    return table


def _table_ddl(table: str, layout: Layout) -> str:
    cols = [f"{n} {t}" for n, t in LINEAGE_COLUMNS] + [f"{c[0]} {c[1]}" for c in layout.columns]
    return f"create table if not exists {RAW_SCHEMA}.{table} ({', '.join(cols)})"


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema `raw` and every raw table (empty, exact types) if they do not exist."""
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    for table, layout in RAW_TABLES.items():
        con.execute(_table_ddl(table, layout))
    con.execute(QUARANTINE_DDL)
    con.execute(LEDGER_DDL)
    # Databases of earlier versions get the added columns (null in their rows).
    for table, added in (("quarantine", QUARANTINE_ADDED), ("load_ledger", LEDGER_ADDED)):
        for name, typ in added:
            con.execute(f"alter table {RAW_SCHEMA}.{table} add column if not exists {name} {typ}")


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, layout: Layout) -> None:
    con.execute(_table_ddl(table, layout))
    have = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [RAW_SCHEMA, table],
        ).fetchall()
    ]
    want = [n for n, _ in LINEAGE_COLUMNS] + [c[0] for c in layout.columns]
    if have != want:
        raise RecsysEvalError(
            f"table {RAW_SCHEMA}.{table} has columns ({', '.join(have)}) but a {layout.name} "
            f"load needs ({', '.join(want)}); choose another --table"
        )


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# Chunk processing (runs in worker processes for large files, in-process otherwise)

_VALIDATOR: RecordValidator | None = None
_FAST_ACCEPT: Any = None
_EVENT_TYPES: dict[str, str] | None = None  # source event name -> contract type
_EVENT_TYPES_KEY = "event_types"  # where the mapping was written, for messages


def _init_worker(
    schema: dict[str, Any], event_types: dict[str, str] | None = None, key: str = "event_types"
) -> None:
    global _VALIDATOR, _FAST_ACCEPT, _EVENT_TYPES, _EVENT_TYPES_KEY
    _EVENT_TYPES, _EVENT_TYPES_KEY = event_types, key
    # With a mapping, the lines are validated as the team wrote them: the contract with the
    # mapping's names as event_type's enum; a valid line then gets the contract's type.
    _VALIDATOR = RecordValidator(
        schema if event_types is None else source_schema(schema, event_types), representable=True
    )
    _FAST_ACCEPT = fast_accept_for(schema, event_types)


def source_schema(schema: dict[str, Any], event_types: dict[str, str]) -> dict[str, Any]:
    """outcome.v1 with event_type's enum replaced by the mapping's source names (for the lines
    as written; the stored rows keep the contract, whose enum is never changed)."""
    if schema.get("$id") != "outcome.v1.json":
        raise RecsysEvalError(
            f"a mapping of event types applies to outcome.v1 only, not {schema.get('$id')}"
        )
    out = copy.deepcopy(schema)
    out["properties"]["event_type"] = {"type": "string", "enum": sorted(event_types)}
    return out


def _map_event_type(verdict: Verdict, mapped: list[str | None]) -> Verdict:
    """A verdict on a line as written -> the verdict on the stored record (its event_type the
    contract's type); an event_type the mapping lacks becomes rule unmapped_event_type.
    `mapped[0]` gets the unmapped name (None: the name was mapped or not a string)."""
    events = _EVENT_TYPES
    assert events is not None
    doc = verdict.doc
    name = doc.get("event_type") if isinstance(doc, dict) else None
    if verdict.ok:
        doc["event_type"] = events[name]  # the enum held only the mapping's names
        encoded = encode(doc)
        if encoded is None:
            error = LineError("$", RULE_REPRESENTABLE, TOO_DEEP_TO_STORE)
            return Verdict(False, doc, [error], unrepresentable=True)
        return Verdict(True, doc, encoded=encoded)
    if not isinstance(name, str) or name in events:
        return verdict
    mapped[0] = name
    errors = [e for e in verdict.errors if not (e.path == "$.event_type" and e.rule == "enum")]
    errors.append(
        LineError(
            "$.event_type",
            RULE_UNMAPPED_EVENT_TYPE,
            f"event_type {name!r} is not in {_EVENT_TYPES_KEY} (mapped: "
            f"{', '.join(repr(n) for n in sorted(events)[:20])}"
            f"{', ...' if len(events) > 20 else ''}); add it there to load such lines",
            f"event_type is not in {_EVENT_TYPES_KEY}",
        )
    )
    return Verdict(False, doc, sorted(set(errors), key=lambda e: (e.path, e.rule, e.message)))


@dataclass(frozen=True)
class _Task:
    index: int
    path: str
    offset: int
    length: int
    at_start: bool
    at_end: bool
    tmp_dir: str
    pii_mode: str = "off"
    kind: str = "lines"  # "lines": whole lines; "long": one line over max_line bytes (streamed)
    max_line: int = MAX_LINE_BYTES


@dataclass
class _ChunkResult:
    index: int
    lines: int = 0
    valid: int = 0
    blank: int = 0
    quarantined: int = 0
    crlf: int = 0
    lone_cr: int = 0
    bom: bool = False
    data_path: str | None = None
    quarantine_path: str | None = None
    pii: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)  # event_type name -> lines


def _quarantine_line(rel: int, line: bytes, errors: list[LineError]) -> bytes:
    return _quarantine_entry(rel, line, len(line), None, errors)


def _quarantine_entry(
    rel: int, text: bytes, length: int, sha256: str | None, errors: list[LineError]
) -> bytes:
    """One quarantine row: the first QUARANTINE_PREFIX_BYTES of the line, its length and hash."""
    prefix = bounded_prefix(text)
    return orjson.dumps(
        {
            "l": rel,
            "raw": prefix.decode("utf-8", "replace"),
            "errors": orjson.dumps([e.as_dict() for e in errors]).decode(),
            "n": len(errors),
            "b": length,
            "h": sha256 or hashlib.sha256(text).hexdigest(),
            "t": len(prefix) < length,
        }
    )


_KEPT_NOTE = (
    f" (the quarantine keeps its first {QUARANTINE_PREFIX_BYTES:,} bytes in raw_text; line_bytes "
    "and line_sha256 describe the whole line)"
)


def _quarantine_long(rel: int, long: LongLine) -> bytes:
    errors = [
        LineError(e.path, e.rule, e.message + _KEPT_NOTE) if e.rule == RULE_LINE_LENGTH else e
        for e in long.errors()
    ]
    return _quarantine_entry(rel, long.prefix, long.length, long.sha256, errors)


def _long_line_result(task: _Task) -> _ChunkResult:
    """A line over max_line bytes: streamed (hash, length, prefix), quarantined, never parsed."""
    digest = LineDigest(strip_bom=task.at_start, keep=QUARANTINE_PREFIX_BYTES + 4)
    with open(task.path, "rb") as fh:
        fh.seek(task.offset)
        left = task.length
        while left:
            block = fh.read(min(SCAN_BLOCK, left))
            if not block:
                raise RecsysEvalError(f"{task.path} changed while it was being loaded")
            left -= len(block)
            digest.update(block)
    long = digest.finish()
    res = _ChunkResult(task.index, lines=1, quarantined=1, bom=long.bom)
    res.lone_cr = int(has_lone_cr(long.prefix))
    res.quarantine_path = os.path.join(task.tmp_dir, f"q{task.index:06d}.ndjson")
    with open(res.quarantine_path, "wb") as fh:
        fh.write(_quarantine_long(1, long) + b"\n")
    return res


_TOO_BIG = (
    "not representable in the warehouse: re-encoded, the record is {n:,} bytes, over the "
    f"{MAX_OBJECT_SIZE:,}-byte limit of one warehouse JSON object"
)


def _drop_oversized(out: list[bytes], lines: list[bytes], bad: list[bytes]) -> list[bytes]:
    """Move re-encoded records DuckDB's read_json could not read (> MAX_OBJECT_SIZE) to `bad`."""
    kept = []
    for row in out:
        if len(row) < MAX_OBJECT_SIZE - 64:
            kept.append(row)
            continue
        rel = int(row[5 : row.index(b",")])  # b'{"l":REL,"d":...}'
        line = lines[rel - 1].removesuffix(b"\r")
        error = LineError("$", RULE_REPRESENTABLE, _TOO_BIG.format(n=len(row)))
        bad.append(_quarantine_line(rel, line, [error]))
    return kept


def _process_chunk(task: _Task) -> _ChunkResult:
    validator = _VALIDATOR
    assert validator is not None, "worker not initialised"
    if task.kind == "long":
        return _long_line_result(task)
    res = _ChunkResult(task.index)
    with open(task.path, "rb") as fh:
        fh.seek(task.offset)
        data = fh.read(task.length)
    if len(data) != task.length:
        raise RecsysEvalError(f"{task.path} changed while it was being loaded")
    if task.at_start and data.startswith(BOM):
        data = data[len(BOM) :]
        res.bom = True
    # Rare cases, found by a scan of the whole chunk: a CR not followed by a newline, a line
    # longer than max_line, a record too big for the warehouse once re-encoded.
    lone_possible = data.count(b"\r") != data.count(b"\r\n")
    long_possible = len(data) > task.max_line
    big = len(data) > MAX_OBJECT_SIZE // 8
    lines = data.split(b"\n")
    unterminated = not data.endswith(b"\n")
    if not unterminated:
        lines.pop()
    elif not task.at_end:
        raise RecsysEvalError(f"internal error: chunk {task.index} does not end at a newline")
    del data
    n_lines = len(lines)
    res.lines = n_lines
    lone_tail = 0  # a last line ending in a CR with no newline after it
    if unterminated and lone_possible and lines[-1].endswith(b"\r"):
        lines[-1] = lines[-1][:-1]
        lone_tail = n_lines

    out: list[bytes] = []
    bad: list[bytes] = []
    fast = _FAST_ACCEPT
    guard = task.pii_mode != "off"
    reject = task.pii_mode == "reject"

    def pii_refused(rel: int, line: bytes) -> bool:
        """Count the line's PII findings; in reject mode quarantine it (True)."""
        findings = privacy.scan_line(line)
        if not findings:
            return False
        privacy.count(findings, res.pii)
        if reject:
            bad.append(_quarantine_line(rel, line, privacy.line_errors(findings)))
        return reject

    blank = crlf = lone = 0
    rel = 0
    for line in lines:
        rel += 1
        if line.endswith(b"\r"):
            line = line[:-1]
            crlf += 1
        if lone_possible and (rel == lone_tail or has_lone_cr(line)):
            lone += 1
        if long_possible and len(line) > task.max_line:
            long = LineDigest(strip_bom=False, keep=QUARANTINE_PREFIX_BYTES + 4)
            long.update(line)
            bad.append(_quarantine_long(rel, long.finish()))
            continue
        if not line or (line[0] != 123 and not line.strip(JSON_WS)):  # 123 == ord("{")
            blank += 1
            continue
        if fast is not None:
            encoded = fast(line)
            if encoded is not None:
                if guard and pii_refused(rel, line):
                    continue
                out.append(b'{"l":%d,"d":%b}' % (rel, encoded))
                continue
        # The verdict `validate` gives (one RecordValidator: the schema and the warehouse rules).
        verdict = validator.check(line, truncated_last=unterminated and rel == n_lines)
        if _EVENT_TYPES is not None:
            unmapped: list[str | None] = [None]
            verdict = _map_event_type(verdict, unmapped)
            if unmapped[0] is not None:
                res.unmapped[unmapped[0]] = res.unmapped.get(unmapped[0], 0) + 1
        if verdict.encoded is not None:
            # DuckDB reads exactly the document that was validated, re-encoded.
            if guard and pii_refused(rel, line):
                continue
            out.append(b'{"l":%d,"d":%b}' % (rel, verdict.encoded))
        else:
            bad.append(_quarantine_line(rel, line, with_line_ending_hint(line, verdict)))
    if big:
        out = _drop_oversized(out, lines, bad)
    del lines
    res.blank = blank
    res.crlf = crlf
    res.lone_cr = lone
    res.valid = len(out)
    res.quarantined = len(bad)
    if out:
        res.data_path = os.path.join(task.tmp_dir, f"c{task.index:06d}.ndjson")
        with open(res.data_path, "wb") as fh:
            fh.write(b"\n".join(out))
            fh.write(b"\n")
    if bad:
        res.quarantine_path = os.path.join(task.tmp_dir, f"q{task.index:06d}.ndjson")
        with open(res.quarantine_path, "wb") as fh:
            fh.write(b"\n".join(bad))
            fh.write(b"\n")
    return res


class _WorkerPool:
    """Validation worker processes, started explicitly as `python -m recsys_eval.loader --worker`.

    Unlike a multiprocessing pool, this never re-imports the caller's `__main__` and never forks
    a process that has DuckDB threads. Tasks are dealt round-robin over the workers' stdin (one
    JSON line each) and results are read back in task order from their stdout.
    """

    def __init__(
        self,
        n: int,
        schema: dict[str, Any],
        event_types: dict[str, str] | None,
        key: str,
        module: str = "recsys_eval.loader",  # recsys_eval.sql_rows: SQL sources' rows
    ) -> None:
        env = dict(os.environ)
        src_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src_root, env.get("PYTHONPATH")) if p)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sent = 0
        self.received = 0
        try:
            for _ in range(n):
                proc = subprocess.Popen(
                    [sys.executable, "-m", module, "--worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
                self.procs.append(proc)
                assert proc.stdin is not None
                setup = {"schema": schema, "event_types": event_types, "key": key}
                proc.stdin.write(orjson.dumps(setup) + b"\n")
                proc.stdin.flush()
        except BaseException:
            self.kill()
            raise

    def submit(self, task: _Task) -> None:
        proc = self.procs[self.sent % len(self.procs)]
        assert proc.stdin is not None
        proc.stdin.write(orjson.dumps(asdict(task)) + b"\n")
        proc.stdin.flush()
        self.sent += 1

    def next_result(self) -> _ChunkResult:
        proc = self.procs[self.received % len(self.procs)]
        assert proc.stdout is not None
        line = proc.stdout.readline()
        self.received += 1
        if not line:
            code = proc.wait()
            raise RecsysEvalError(f"a loader worker process exited unexpectedly (exit code {code})")
        message = orjson.loads(line)
        if "error" in message:
            raise RecsysEvalError(message["error"])
        return _ChunkResult(**message["ok"])

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()


def serve_worker(handle: Callable[[dict[str, Any], bytes], Any], who: str) -> int:
    """A worker process's loop (this loader's and the SQL sources'): the first stdin line is the
    setup (schema, mapping, key), then one task a line; each answer is one stdout line,
    {"ok": <handle's dataclass as a dict>} or {"error": <message>}."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    first = stdin.readline()
    if not first:
        return 0
    setup = orjson.loads(first)
    for line in stdin:
        try:
            result: dict[str, Any] = {"ok": asdict(handle(setup, line))}
        except RecsysEvalError as exc:
            result = {"error": str(exc)}
        except Exception as exc:
            result = {"error": f"{who} failed: {type(exc).__name__}: {exc}"}
        stdout.write(orjson.dumps(result) + b"\n")
        stdout.flush()
    return 0


def _worker_main() -> int:
    """Worker process: first stdin line is the schema (and mapping), then one task per line."""
    ready: list[bool] = []

    def handle(setup: dict[str, Any], line: bytes) -> _ChunkResult:
        if not ready:
            _init_worker(setup["schema"], setup["event_types"], setup["key"])
            ready.append(True)
        return _process_chunk(_Task(**orjson.loads(line)))

    return serve_worker(handle, "loader worker")


def _find_newline(fh: Any, start: int, stop: int) -> int:
    """Offset of the first newline in [start, stop) of the open file, or -1 (streamed)."""
    fh.seek(start)
    pos = start
    while pos < stop:
        block = fh.read(min(SCAN_BLOCK, stop - pos))
        if not block:
            return -1
        found = block.find(b"\n")
        if found >= 0:
            return pos + found
        pos += len(block)
    return -1


def _rfind_newline(fh: Any, start: int, stop: int) -> int:
    """Offset of the last newline in [start, stop) of the open file, or -1 (streamed)."""
    pos = stop
    while pos > start:
        low = max(start, pos - (64 << 10))
        fh.seek(low)
        found = fh.read(pos - low).rfind(b"\n")
        if found >= 0:
            return low + found
        pos = low
    return -1


def _complete_end(path: Path, start: int, size: int) -> int:
    """The end of the last complete (newline-terminated) line in [start, size), else start."""
    with path.open("rb") as fh:
        return max(start, _rfind_newline(fh, start, size) + 1)


@dataclass(frozen=True)
class _Plan:
    """What one load reads: fixed before any chunk is read (see _load)."""

    size: int  # the file's size when the load started
    start: int  # the bytes before it were loaded by `prior` (0: a fresh load)
    read_from: int  # first byte of the first new line (start + 1 past a newline ending prior)
    complete_end: int  # end of the last newline-terminated line within `size`
    first_line: int  # the line number of the line at read_from
    prior: _Prior | None = None


def _plan_chunks(
    path: Path,
    plan: _Plan,
    tmp_dir: str,
    chunk_bytes: int,
    pii_mode: str = "off",
    max_line: int = MAX_LINE_BYTES,
) -> tuple[list[_Task], _Task | None]:
    """Tasks over the complete lines [read_from, complete_end), and the unterminated last line.

    A chunk holds whole lines and ends at the first newline after `chunk_bytes`; when the line
    across that point is longer than `max_line`, it gets a task of its own, streamed (kind
    "long"). A chunk is thus at most chunk_bytes + max_line bytes (in practice chunk_bytes)."""
    tasks: list[_Task] = []

    def task(offset: int, end: int, kind: str = "lines", at_end: bool = False) -> _Task:
        return _Task(
            len(tasks), str(path), offset, end - offset, offset == 0, at_end, tmp_dir, pii_mode,
            kind, max_line,
        )  # fmt: skip

    stop = plan.complete_end
    with path.open("rb") as fh:
        offset = plan.read_from
        while offset < stop:
            nominal = offset + chunk_bytes
            if nominal >= stop:
                tasks.append(task(offset, stop))
                break
            # The line across `nominal` ends the chunk, unless it is longer than max_line.
            line_start = max(offset, _rfind_newline(fh, offset, nominal) + 1)
            newline = _find_newline(fh, nominal, min(stop, line_start + max_line + 1))
            if newline >= 0:
                tasks.append(task(offset, newline + 1))
                offset = newline + 1
                continue
            if line_start > offset:
                tasks.append(task(offset, line_start))
            scan_from = max(nominal, line_start + max_line + 1)
            line_end = _find_newline(fh, scan_from, stop) + 1  # stop follows a newline
            tasks.append(task(line_start, line_end, "long"))
            offset = line_end
    tail = None
    if plan.size > stop:
        kind = "long" if plan.size - stop > max_line else "lines"
        tail = task(stop, plan.size, kind, at_end=True)
    return tasks, tail


# ---------------------------------------------------------------------------------------------
# Progress


class _Hasher:
    """sha256 of the file's first m bytes for each m in `marks`, in one pass, now or in a
    background thread."""

    def __init__(self, path: Path, marks: set[int]) -> None:
        self.path = path
        self.marks = marks
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.value: dict[int, str] | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.value = prefix_sha256(self.path, self.marks, self.stop)
        except BaseException as exc:
            self.error = exc

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="recsys-eval-sha256", daemon=True)
        self.thread.start()

    def result(self) -> dict[int, str]:
        if self.thread is None:
            self._run()
        else:
            self.thread.join()
        if self.error is not None:
            if isinstance(self.error, OSError):
                raise RecsysEvalError(
                    f"cannot read {self.path}: {self.error.strerror or self.error}"
                ) from self.error
            raise self.error
        assert self.value is not None
        return self.value

    def cancel(self) -> None:
        self.stop.set()


class _Progress:
    def __init__(self, label: str, total_bytes: int, enabled: bool) -> None:
        self.label = label
        self.total = max(total_bytes, 1)
        self.enabled = enabled
        self.start = time.monotonic()
        self.last = self.start  # the first update comes after 0.5 s: short loads show nothing
        self.shown = False

    def update(self, done_bytes: int, lines: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        pct = 100.0 * done_bytes / self.total
        sys.stderr.write(
            f"\r{self.label}: {pct:5.1f}%  {lines:,} lines  {lines / elapsed:,.0f} lines/s   "
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# The load


def file_sha256(path: Path, stop: threading.Event | None = None) -> tuple[str, int]:
    """(hex sha256, size in bytes), streamed. `stop` aborts early (the result is then unused)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while stop is None or not stop.is_set():
            block = fh.read(HASH_BLOCK)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def prefix_sha256(
    path: Path, marks: set[int], stop: threading.Event | None = None
) -> dict[int, str]:
    """{m: hex sha256 of the file's first m bytes} for each m in `marks`, in one streamed pass.

    Reads exactly up to max(marks), never further (the file may be growing). `stop` aborts early
    (the result is then unused)."""
    digest = hashlib.sha256()
    found: dict[int, str] = {}
    pos = 0
    with path.open("rb") as fh:
        for mark in sorted(marks):
            while pos < mark:
                if stop is not None and stop.is_set():
                    return found
                block = fh.read(min(HASH_BLOCK, mark - pos))
                if not block:
                    raise RecsysEvalError(
                        f"{path} became shorter while it was being loaded ({pos:,} bytes, "
                        f"{mark:,} expected); nothing was written: load it once it is complete"
                    )
                digest.update(block)
                pos += len(block)
            found[mark] = digest.hexdigest()
    return found


def _new_load_id() -> str:
    return f"load-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _default_workers(size: int) -> int:
    if size < PARALLEL_MIN_BYTES:
        return 0
    return min(2, os.cpu_count() or 1)


def load_file(
    con_or_path: duckdb.DuckDBPyConnection | str | Path,
    schema_name: str,
    path: Path,
    table: str | None = None,
    progress: bool = False,
    *,
    workers: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    batch_rows: int = BATCH_ROWS,
    pii_guard: str = "off",
    max_line: int = MAX_LINE_BYTES,
    event_types: dict[str, str] | None = None,
    event_types_key: str = "event_types",
) -> LoadResult:
    """Validate and load one JSONL file into `raw.<table>` in one transaction.

    `con_or_path` is an open DuckDB connection or a database path (opened and closed here).
    `workers=None` uses 2 worker processes for files over 24 MB; 0 validates in-process.
    `pii_guard` (off | flag | reject, see recsys_eval.privacy) counts or quarantines valid lines
    whose identifiers or context values look like email addresses or phone numbers.
    A line over `max_line` bytes is quarantined as too long, streamed, never held whole.
    The load reads the file's size once at the start and loads exactly that prefix (see _load).
    `event_types` (outcome.v1 only): source event name -> click | conversion. A line whose
    event_type is a name is stored with the contract's type; any other line is quarantined with
    rule unmapped_event_type and counted per name (`unmapped_event_types`); `event_types_key`
    names the mapping in messages (e.g. outcomes.event_types). The mapping is part of what
    identifies a load: the same file with another mapping is refused, never skipped.
    Raises RecsysEvalError for a missing or unreadable file, a bad table name, a table with other
    columns or a locked database; nothing is written then.
    """
    pii = privacy.check_mode(pii_guard)
    ref = schema_registry.resolve(schema_name)
    if event_types is not None:
        source_schema(ref.schema, event_types)  # outcome.v1 only, before any work
        if not event_types:
            raise RecsysEvalError(f"{event_types_key}: the mapping of event names is empty")
        for name, typ in sorted(event_types.items()):
            if not name or typ not in ("click", "conversion"):
                raise RecsysEvalError(
                    f"{event_types_key}: {name!r} -> {typ!r}: a mapping takes non-empty event "
                    "names onto click or conversion"
                )
    target = check_table_name(table or default_table(ref.name))
    layout = layout_for(ref.name)
    src = Path(path)
    if not src.exists():
        raise RecsysEvalError(f"input file not found: {path}")
    if not src.is_file():
        raise RecsysEvalError(f"input is not a regular file: {path}")
    if not os.access(src, os.R_OK):
        raise RecsysEvalError(f"input file is not readable: {path}")
    src = src.resolve()

    if isinstance(con_or_path, (str, Path)):
        from recsys_eval import warehouse

        con = warehouse.connect(con_or_path)
        try:
            return _load(
                con, ref, target, layout, src, progress, workers, chunk_bytes, batch_rows, pii,
                max_line, event_types, event_types_key,
            )  # fmt: skip
        finally:
            con.close()
    return _load(
        con_or_path, ref, target, layout, src, progress, workers, chunk_bytes, batch_rows, pii,
        max_line, event_types, event_types_key,
    )  # fmt: skip


@dataclass(frozen=True)
class _Prior:
    """The latest load of the same path into the same table (an append-only log grows)."""

    load_id: str
    seq: int
    size: int  # it loaded the file's first `size` bytes
    sha: str  # their sha256
    last_line: int  # the number of the last line it loaded
    event_types: str | None = None  # its mapping of event names (canonical JSON)


def _prior_load(con: duckdb.DuckDBPyConnection, target: str, src: Path) -> _Prior | None:
    row = con.execute(
        "select load_id, load_seq, file_size, file_sha256, "
        "coalesce(first_line_no, 1) + lines_read - 1, event_types "
        "from raw.load_ledger where target_table = ? and source_file = ? "
        "order by file_size desc, load_seq desc limit 1",
        [target, str(src)],
    ).fetchone()
    if row is None:
        return None
    return _Prior(str(row[0]), int(row[1]), int(row[2]), str(row[3]), int(row[4]), row[5])


def _byte_at(path: Path, pos: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(pos)
        return fh.read(1)


def _size_now(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise RecsysEvalError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _changed_message(src: Path, target: str, prior: _Prior, size: int) -> str:
    if prior.size > size:
        what = f"{src} is now {size:,} bytes, shorter than the {prior.size:,} bytes"
    else:
        what = f"the first {prior.size:,} bytes of {src} differ from those"
    return (
        f"{what} load {prior.load_id} loaded into raw.{target} (sha256 {prior.sha[:12]}): the "
        "file was changed, not appended to, and loading it would mix two versions; nothing was "
        "written. A file loaded again under the same path may only grow by appending: if this "
        "is another file, give it another name; to replace the earlier load, use a fresh "
        "--database"
    )


def _append_plan(
    src: Path, target: str, prior: _Prior, digests: dict[int, str], size: int, complete_end: int
) -> _Plan:
    """Load only what was appended after `prior`'s bytes; refuse a file whose prefix changed."""
    if prior.size > size or digests.get(prior.size) != prior.sha:
        raise RecsysEvalError(_changed_message(src, target, prior, size))
    read_from = prior.size
    if prior.size and _byte_at(src, prior.size - 1) != b"\n":
        # The prior load took a last line without a newline (the file had not grown then).
        if _byte_at(src, prior.size) != b"\n":
            raise RecsysEvalError(
                f"{src}: load {prior.load_id} loaded its line {prior.last_line:,} without a "
                "newline at its end, and the file has grown since with bytes that continue that "
                f"line, so raw.{target} holds it incomplete; nothing was written. Load the "
                "finished file into a fresh --database (writers should end every line with a "
                "newline)"
            )
        read_from += 1  # the newline that ends the prior load's last line
    return _Plan(
        size, prior.size, read_from, max(complete_end, read_from), prior.last_line + 1, prior
    )


def _skipped(
    load_id: str, seq: int, target: str, src: Path, sha: str, size: int, t0: float
) -> LoadResult:
    return LoadResult(
        load_id=load_id,
        load_seq=seq,
        table=target,
        source_file=str(src),
        file_sha256=sha,
        lines_read=0,
        rows_loaded=0,
        rows_quarantined=0,
        blank_lines=0,
        skipped_duplicate=True,
        seconds=time.perf_counter() - t0,
        end_byte=size,
        size_at_start=size,
        size_at_end=size,
    )


def _load(
    con: duckdb.DuckDBPyConnection,
    ref: schema_registry.SchemaRef,
    target: str,
    layout: Layout,
    src: Path,
    progress: bool,
    workers: int | None,
    chunk_bytes: int,
    batch_rows: int,
    pii_guard: str = "off",
    max_line: int = MAX_LINE_BYTES,
    event_types: dict[str, str] | None = None,
    event_types_key: str = "event_types",
) -> LoadResult:
    """Load the file's first `size` bytes (its size now) up to the last complete line in them.

    The unterminated last line is loaded only when the file did not grow before it was reached
    (else a writer may be in the middle of it). The ledger row's file_sha256 and file_size are
    those of exactly the bytes loaded (with the earlier loads' bytes before them). A path loaded
    before into the same table whose first bytes are unchanged gets only its appended lines,
    numbered on from the earlier load's; a path whose loaded bytes changed is refused."""
    import duckdb

    t0 = time.perf_counter()
    started_at = _utcnow()
    ensure_raw_schema(con)
    _ensure_table(con, target, layout)
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise RecsysEvalError(f"cannot read {src}: {exc.strerror or exc}") from exc
    mapping = _mapping_text(event_types)
    prior = _prior_load(con, target, src)
    start = prior.size if prior is not None and prior.size <= size else 0
    complete_end = _complete_end(src, start, size)
    # When the file may be in the ledger already (a row of the same size, or an earlier load of
    # this path), the hashes come first. Else they are computed in a thread while the file loads
    # (hashlib releases the GIL).
    same_size = con.execute(
        "select count(*) from raw.load_ledger where file_size = ? and target_table = ?",
        [size, target],
    ).fetchone()[0]
    hasher = _Hasher(src, {start, complete_end, size})
    plan = _Plan(size, 0, 0, complete_end, 1)
    if same_size or prior is not None:
        digests = hasher.result()
        if same_size:
            dup = con.execute(
                "select load_id, load_seq, event_types, unmapped_event_types from "
                "raw.load_ledger where file_sha256 = ? and target_table = ? order by load_seq "
                "limit 1",
                [digests[size], target],
            ).fetchone()
            if dup is not None:
                if dup[2] != mapping:
                    # Loading it again would hold its lines twice; skipping it would keep the
                    # earlier load's mapping.
                    raise RecsysEvalError(
                        _other_mapping_message(
                            src,
                            target,
                            dup[0],
                            dup[2],
                            mapping,
                            event_types_key,
                            "loading it again would hold its lines twice in",
                        )
                    )
                done = _skipped(dup[0], int(dup[1]), target, src, digests[size], size, t0)
                done.unmapped_event_types = orjson.loads(dup[3]) if dup[3] else {}
                return done
        if prior is not None:
            plan = _append_plan(src, target, prior, digests, size, complete_end)
        if prior is not None and prior.event_types != mapping:
            raise RecsysEvalError(
                _other_mapping_message(
                    src,
                    target,
                    prior.load_id,
                    prior.event_types,
                    mapping,
                    event_types_key,
                    "appending its new lines with another mapping would mix two mappings in",
                )
            )
    else:
        hasher.start()

    load_id = _new_load_id()
    n_workers = _default_workers(size) if workers is None else workers
    bar = _Progress(f"loading {src.name}", size, progress)
    tmp_dir = str(tempdirs.create(tempdirs.LOAD_PREFIX))  # swept if we are killed
    pool: Any = None
    # Rows carry their line number, so DuckDB need not keep insertion order (measured: the
    # insert of 1M exposures is ~25 % faster without it).
    saved_order = con.execute("select current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("set preserve_insertion_order = false")
    con.execute("begin transaction")
    try:
        seq = int(
            con.execute("select coalesce(max(load_seq), 0) + 1 from raw.load_ledger").fetchone()[0]
        )
        tasks, tail = _plan_chunks(src, plan, tmp_dir, chunk_bytes, pii_guard, max_line)
        if n_workers > 0 and len(tasks) > 1:
            pool = _WorkerPool(n_workers, ref.schema, event_types, event_types_key)
        else:
            _init_worker(ref.schema, event_types, event_types_key)
        totals = _ChunkResult(-1)
        pii_counts: dict[str, int] = {}
        unmapped: dict[str, int] = {}
        phases = {"validate_wait": 0.0, "insert": 0.0}
        data_sql, quarantine_sql = _insert_sql(target, layout)
        params = [load_id, seq, str(src)]
        qparams = [load_id, seq, str(src), ref.name, target, started_at]
        done_bytes = 0
        queue = deque(tasks)

        window = n_workers + max(2, batch_rows // max(1, chunk_bytes // 1024))
        batch: list[tuple[str, int]] = []
        batch_n = 0

        def submit() -> None:
            while queue and pool.sent - pool.received < window:
                pool.submit(queue.popleft())

        def results() -> Iterator[tuple[_Task, _ChunkResult]]:
            if pool is not None:
                submit()
            for task in tasks:
                if pool is not None:
                    res = pool.next_result()
                    submit()
                else:
                    res = _process_chunk(task)
                yield task, res
            if tail is not None and _size_now(src) == plan.size:
                # The unterminated last line, only if the file has not grown: else a writer
                # may be in the middle of it (the next load takes it once it has its newline).
                _init_worker(ref.schema, event_types, event_types_key)
                yield tail, _process_chunk(tail)

        def insert_batch() -> None:
            # One insert per batch of >= batch_rows rows: DuckDB then writes whole row groups
            # straight to the file (per-chunk inserts were 2-3x slower), and the workers keep
            # validating the next chunks meanwhile.
            con.execute(_fill_batch(data_sql, batch), params)
            for f, _ in batch:
                os.unlink(f)
            batch.clear()

        end = plan.complete_end
        chunks = results()
        while True:
            tw = time.perf_counter()
            item = next(chunks, None)
            if item is None:
                break
            task, res = item
            ti = time.perf_counter()
            phases["validate_wait"] += ti - tw
            offset = plan.first_line - 1 + totals.lines
            if res.data_path:
                batch.append((res.data_path, offset))
                batch_n += res.valid
            if batch and batch_n >= batch_rows:
                insert_batch()
                batch_n = 0
            if res.quarantine_path:
                con.execute(_fill(quarantine_sql, res.quarantine_path, offset), qparams)
                os.unlink(res.quarantine_path)
            phases["insert"] += time.perf_counter() - ti
            totals.lines += res.lines
            totals.valid += res.valid
            totals.blank += res.blank
            totals.quarantined += res.quarantined
            totals.crlf += res.crlf
            totals.lone_cr += res.lone_cr
            for key, n in res.pii.items():
                pii_counts[key] = pii_counts.get(key, 0) + n
            for name, n in res.unmapped.items():
                unmapped[name] = unmapped.get(name, 0) + n
            totals.bom = totals.bom or res.bom
            done_bytes += task.length
            end = max(end, task.offset + task.length)
            bar.update(done_bytes, totals.lines)
        if batch:
            insert_batch()
        if pool is not None:
            pool.close()
            pool = None
        if plan.prior is not None and end == plan.start:
            # Only an unfinished line was appended (the file is still growing): nothing new.
            con.execute("rollback")
            prior = plan.prior
            return _skipped(prior.load_id, prior.seq, target, src, prior.sha, prior.size, t0)

        if layout.has_ts and totals.valid:
            moved = _quarantine_bad_timestamps(con, src, target, ref.name, load_id, seq, started_at)
            totals.valid -= moved
            totals.quarantined += moved

        tf = time.perf_counter()
        sha = hasher.result()[end]
        phases["hash_wait"] = time.perf_counter() - tf
        if totals.lines != totals.valid + totals.quarantined + totals.blank:
            raise RecsysEvalError(
                f"internal error: counts do not add up for {src} ({totals.lines} read, "
                f"{totals.valid} loaded, {totals.quarantined} quarantined, {totals.blank} blank)"
            )
        con.execute(
            f"insert into raw.load_ledger ({LEDGER_COLUMNS}) values ({', '.join('?' * 19)})",
            [
                seq,
                load_id,
                ref.name,
                target,
                str(src),
                sha,
                end,
                totals.lines,
                totals.valid,
                totals.quarantined,
                totals.blank,
                started_at,
                _utcnow(),
                plan.start,
                end - plan.start,
                plan.first_line,
                plan.prior.load_id if plan.prior is not None else None,
                mapping,
                orjson.dumps(unmapped, option=orjson.OPT_SORT_KEYS).decode()
                if mapping is not None
                else None,
            ],
        )
        size_at_end = _size_now(src)
        con.execute("commit")
    except BaseException as exc:
        hasher.cancel()
        if pool is not None:
            pool.kill()
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        if isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower():
            # DuckDB turns Ctrl-C during a query into "Query interrupted".
            raise KeyboardInterrupt from exc
        if isinstance(exc, duckdb.Error):
            raise RecsysEvalError(f"loading {src} failed, nothing was written: {exc}") from exc
        if isinstance(exc, OSError):
            raise RecsysEvalError(
                f"loading {src} failed, nothing was written: {exc.strerror or exc}"
            ) from exc
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.kill()
        shutil.rmtree(tmp_dir, ignore_errors=True)
        with contextlib.suppress(duckdb.Error):
            con.execute(f"set preserve_insertion_order = {str(saved_order).lower()}")

    return LoadResult(
        load_id=load_id,
        load_seq=seq,
        table=target,
        source_file=str(src),
        file_sha256=sha,
        lines_read=totals.lines,
        rows_loaded=totals.valid,
        rows_quarantined=totals.quarantined,
        blank_lines=totals.blank,
        skipped_duplicate=False,
        seconds=time.perf_counter() - t0,
        bom=totals.bom,
        crlf_lines=totals.crlf,
        pii_findings=pii_counts,
        phases=phases,
        lone_cr_lines=totals.lone_cr,
        start_byte=plan.start,
        end_byte=end,
        first_line_no=plan.first_line,
        appends_to=plan.prior.load_id if plan.prior is not None else None,
        size_at_start=size,
        size_at_end=size_at_end,
        unmapped_event_types=unmapped,
    )


def _mapping_text(event_types: dict[str, str] | None) -> str | None:
    """What identifies a mapping in the ledger: canonical JSON, None without one."""
    if event_types is None:
        return None
    return orjson.dumps(event_types, option=orjson.OPT_SORT_KEYS).decode()


def _describe_mapping(text: str | None) -> str:
    if text is None:
        return "no event_types mapping"
    return f"event_types {text if len(text) <= 300 else text[:300] + '...'}"


def _other_mapping_message(
    src: Path, target: str, load_id: str, had: str | None, now: str | None, key: str, why: str
) -> str:
    return (
        f"{src} was loaded into raw.{target} by load {load_id} with {_describe_mapping(had)}; "
        f"this load has {_describe_mapping(now)}{f' ({key})' if now else ''}: {why} "
        f"raw.{target}, so nothing was written. Load it into a fresh --database, or with the "
        "earlier load's mapping"
    )


def _insert_sql(table: str, layout: Layout) -> tuple[str, str]:
    """Insert statements; params load_id, seq, file (+ schema, table, time for quarantine).

    The data statement reads a batch of chunk files (@FILES@, a list literal) and adds each
    file's line offset (@OFFSETS@, a VALUES list) to its chunk-relative line numbers. The
    quarantine statement reads one chunk file (@FILE@) with offset @OFF@.
    """
    read_cols = "{'l': 'bigint', 'd': " + _sql_str(layout.read_type()) + "}"
    exprs = ", ".join(c[3] for c in layout.columns)
    data = (
        f"insert into {RAW_SCHEMA}.{table} select ?, ?, ?, r.l + o.off, {exprs} "
        f"from read_json(@FILES@, format = 'newline_delimited', columns = {read_cols}, "
        f"maximum_object_size = {MAX_OBJECT_SIZE}, filename = true) r "
        "join (values @OFFSETS@) o(f, off) on r.filename = o.f"
    )
    qcols = (
        "{'l': 'bigint', 'raw': 'varchar', 'errors': 'varchar', 'n': 'integer', 'b': 'bigint', "
        "'h': 'varchar', 't': 'boolean'}"
    )
    quarantine = (
        f"insert into raw.quarantine ({QUARANTINE_COLUMNS}) "
        "select ?, ?, ?, l + @OFF@, ?, ?, raw, errors, n, ?, b, h, t "
        f"from read_json(@FILE@, format = 'newline_delimited', columns = {qcols}, "
        f"maximum_object_size = {MAX_OBJECT_SIZE})"
    )
    return data, quarantine


def _fill(template: str, file: str, offset: int) -> str:
    return template.replace("@FILE@", _sql_str(file)).replace("@OFF@", str(int(offset)))


def _fill_batch(template: str, batch: list[tuple[str, int]]) -> str:
    files = "[" + ", ".join(_sql_str(f) for f, _ in batch) + "]"
    offsets = ", ".join(f"({_sql_str(f)}, {int(off)}::bigint)" for f, off in batch)
    return template.replace("@FILES@", files).replace("@OFFSETS@", offsets)


# DuckDB could not cast it, or its UTC value leaves the years 1-9999 that Spark and Python hold
# (e.g. 9999-12-31T23:59:59-01:00). The validator already refuses the latter, as `validate` does
# (warehouse_rules): this is the safety net for a schema file that drops `format: date-time`.
_BAD_TS = "(ts is null or year(ts) not between 1 and 9999)"


def _quarantine_bad_timestamps(
    con: duckdb.DuckDBPyConnection,
    src: Path,
    table: str,
    schema_name: str,
    load_id: str,
    seq: int,
    now: datetime,
) -> int:
    """Move schema-valid rows whose `ts` DuckDB cannot represent into the quarantine."""
    bad = con.execute(
        f"select line_no, ts is null from {RAW_SCHEMA}.{table} where load_id = ? and {_BAD_TS}",
        [load_id],
    ).fetchall()
    if not bad:
        return 0
    wanted = {int(r[0]) for r in bad}
    uncast = {int(r[0]) for r in bad if r[1]}
    raws = _read_lines(src, wanted)
    rows = []
    for line_no in sorted(wanted):
        raw = raws.get(line_no, b"")
        prefix = bounded_prefix(raw)
        ts_text = _ts_of(raw)
        reason = "" if line_no in uncast else " (in UTC it must fall in the years 1 to 9999)"
        error = LineError(
            "$.ts",
            RULE_REPRESENTABLE,
            f"timestamp {ts_text!r} cannot be represented as a warehouse (DuckDB) timestamp"
            + reason,
        )
        rows.append(
            [
                load_id,
                seq,
                str(src),
                line_no,
                schema_name,
                table,
                prefix.decode("utf-8", "replace"),
                orjson.dumps([error.as_dict()]).decode(),
                1,
                now,
                len(raw),
                hashlib.sha256(raw).hexdigest(),
                len(prefix) < len(raw),
            ]
        )
    con.execute(
        f"delete from {RAW_SCHEMA}.{table} where load_id = ? and {_BAD_TS}",
        [load_id],
    )
    con.executemany(
        f"insert into raw.quarantine ({QUARANTINE_COLUMNS}) values ({', '.join('?' * 13)})", rows
    )
    return len(rows)


def _ts_of(raw: bytes) -> str:
    try:
        doc = orjson.loads(raw)
        return str(doc.get("ts"))
    except (orjson.JSONDecodeError, AttributeError):
        return "?"


def _read_lines(path: Path, wanted: set[int]) -> dict[int, bytes]:
    """The raw text (without line ending and BOM) of the given 1-based physical lines.

    Streamed in bounded memory: lines over MAX_LINE_BYTES are skipped, never held whole."""
    found: dict[int, bytes] = {}
    last = max(wanted)
    for no, (line, _) in enumerate(iter_bounded_lines(path), start=1):
        if no in wanted and isinstance(line, bytes):
            text = line[:-1] if line.endswith(b"\r") else line
            if no == 1 and text.startswith(BOM):
                text = text[len(BOM) :]
            found[no] = text
        if no >= last:
            break
    return found


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_worker_main())
