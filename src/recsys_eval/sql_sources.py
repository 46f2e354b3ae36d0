"""SQL sources: `type: postgres` and `type: duckdb` in the dataset YAML (`dsn` + `query`).

As in the reference, the query must return ONE column per row holding one JSON document (json,
jsonb, text / varchar or bytea / blob). Each row is decoded exactly like a JSONL line and judged by
the loader's own RecordValidator (the one definition of valid: the JSON Schema plus the warehouse
rules, the same fast pre-check, the same PII guard). A row that is not valid (not JSON, not UTF-8,
a schema violation, a NULL, over 64 MiB) goes to `raw.quarantine` with every error; the others go
to the raw table. Rows are numbered from 1 in the order the query returns them: `line_no` is that
row index, and `source_file` is a description that never holds the DSN: `<type>:<the first 16 hex
digits of the query text's SHA-256>`, e.g. `postgres:8f1c0a7b2d3e4f50`.

Rows are streamed in batches of `fetch_rows` (Postgres: in a read-only transaction, the query
described by a declared cursor, then read with `COPY (<query>) TO STDOUT (FORMAT BINARY)`;
DuckDB: a read-only connection to the database file and `fetchmany`), validated and written to
the warehouse in inserts of about `insert_rows` rows, so memory stays bounded whatever the query
returns. A thread reads and hashes the batches while the caller's thread inserts; after the first
PARALLEL_MIN_ROWS rows two worker processes judge the batches (`recsys_eval.sql_rows`), with the
same verdicts. A jsonb column's accepted documents are stored as their text (no key repeats in
jsonb, so the re-encoding that only served the repeated-key check is skipped).

One source is one load and one transaction, with a `raw.load_ledger` row like a JSONL file's:
`file_sha256` is the SHA-256 of the rows' bytes (each row framed as its length, 8 bytes
big-endian, then its bytes; a NULL row as eight 0xff bytes), `file_size` their total bytes and
`lines_read` the number of rows. "The same source" is therefore the same rows in the same order:
a query whose rows are identical to a load already in the same table (of the same database) is
not loaded again, whatever its DSN or query text; rows that changed are a new load.

The DSN is never printed: errors name the source (`exposures (postgres:8f1c...)`), and every
driver message is cut to its first line, stripped of the DSN and its password and passed through
`recsys_eval.redaction.redact_text`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import shutil
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson

from recsys_eval import loader, privacy, schema_registry, tempdirs
from recsys_eval.errors import RecsysEvalError
from recsys_eval.loader import (
    _BAD_TS,
    QUARANTINE_COLUMNS,
    RAW_SCHEMA,
    LoadResult,
    _ChunkResult,
    _ensure_table,
    _fill,
    _fill_batch,
    _insert_sql,
    _new_load_id,
    _Task,
    _ts_of,
    _utcnow,
    _WorkerPool,
    check_table_name,
    default_table,
    ensure_raw_schema,
    layout_for,
)
from recsys_eval.redaction import REDACTED, redact_text
from recsys_eval.sql_rows import (  # noqa: F401  (_Judge, NULL_*: also used from here)
    NULL_FRAME,
    NULL_MESSAGE,
    ROWS_TASK,
    RULE_NULL,
    UNIQUE_ROWS_TASK,
    _Judge,
    frame,
    judge_rows,
)
from recsys_eval.validation import RULE_REPRESENTABLE, LineError, bounded_prefix

SQL_TYPES = ("postgres", "duckdb")
FETCH_ROWS = 5_000  # rows per fetch from the server
INSERT_ROWS = 250_000  # validated rows per insert into the warehouse (>= 2 row groups)
PARALLEL_MIN_ROWS = 20_000  # rows judged in this process before worker processes start
WORKER_MODULE = "recsys_eval.sql_rows"
WINDOW_ROWS = 200_000  # rows read ahead of the inserts (in batch files: memory stays bounded)

# Postgres column types whose text is the JSON document (type OIDs), and bytea.
PG_TEXT_TYPES = {114: "json", 3802: "jsonb", 25: "text", 1043: "varchar", 1042: "bpchar",
                 705: "unknown", 19: "name"}  # fmt: skip
PG_BYTEA = 17
PG_JSONB = 3802
DUCKDB_TYPES = ("JSON", "VARCHAR", "BLOB")
# The ledger columns a SQL load fills (any later ones stay null).
_LEDGER_COLUMNS = (
    "load_seq, load_id, schema_name, target_table, source_file, file_sha256, file_size, "
    "lines_read, rows_loaded, rows_quarantined, blank_lines, started_at, finished_at, "
    "start_byte, bytes_loaded, first_line_no, appends_to, event_types, unmapped_event_types"
)


def describe(source_type: str, query: str) -> str:
    """`postgres:<16 hex digits of sha256(query)>`: names the source, never holds the DSN."""
    return f"{source_type}:{hashlib.sha256(query.encode('utf-8')).hexdigest()[:16]}"


def source_name(name: str, source_type: str, query: str) -> str:
    """How messages name a source: `exposures (postgres:8f1c0a7b2d3e4f50)`."""
    return f"{name} ({describe(source_type, query)})"


# ---------------------------------------------------------------------------------------------
# Secrets out of driver messages


def _dsn_secrets(dsn: str) -> list[str]:
    """The DSN and the passwords in it, longest first (to be replaced in any message)."""
    found = {dsn}
    with contextlib.suppress(Exception):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(dsn)
        if parts.password:
            found |= {parts.password, unquote(parts.password)}
        if parts.netloc:
            found.add(parts.netloc)
    with contextlib.suppress(Exception):
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(dsn).get("password")
        if password:
            found.add(str(password))
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(message: str, dsn: str) -> str:
    """A driver message as one line, without the DSN or its password, redacted."""
    lines = [ln.strip() for ln in str(message).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else "unknown error"
    for secret in _dsn_secrets(dsn):
        text = text.replace(secret, REDACTED)
    return redact_text(text)


# ---------------------------------------------------------------------------------------------
# Reading the rows


def _strip_query(query: str) -> str:
    """The query without trailing semicolons and blanks (it becomes a cursor's body)."""
    text = query.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _duckdb_path(dsn: str, base_dir: Path | None) -> str:
    """A DuckDB DSN is a database file path (or `:memory:`). Relative paths resolve against the
    working directory, then against the dataset file's folder (like a JSONL `path`)."""
    if dsn == ":memory:":
        return dsn
    path = Path(dsn).expanduser()
    if path.is_absolute() or path.exists() or base_dir is None:
        return str(path)
    beside = base_dir / path
    return str(beside) if beside.exists() else str(path)


def iter_postgres(
    dsn: str, query: str, who: str, fetch_rows: int, info: dict[str, Any] | None = None
) -> Iterator[list[Any]]:
    """Batches of the query's single column, as bytes (None for NULL), in a read-only
    transaction: the query is described first (a cursor that is declared, never fetched: one
    column of a JSON type), then its rows are read with `COPY (<query>) TO STDOUT (FORMAT
    BINARY)`, Postgres's bulk path (about 2 us of server CPU less per jsonb row than FETCH). In
    the binary format each value is the bytes the column's text output would hold (text, json,
    varchar, ... in the client encoding UTF8; bytea raw); a jsonb value is a version byte (1)
    followed by that text. `info["unique_keys"]` is set (before the first batch) when the column
    is jsonb: its text repeats no key."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        raise RecsysEvalError(
            f"{who}: postgres sources need the psycopg package (pip install 'psycopg[binary]')"
        ) from None

    try:
        from psycopg.conninfo import conninfo_to_dict

        conninfo_to_dict(dsn)
    except Exception:
        raise RecsysEvalError(
            f"{who}: the dsn is not a valid PostgreSQL connection string (URL or key=value "
            "pairs; not shown)"
        ) from None
    try:
        conn = psycopg.connect(dsn, client_encoding="UTF8", application_name="recsys-eval")
    except psycopg.Error as exc:
        raise RecsysEvalError(f"{who}: cannot connect: {scrub(str(exc), dsn)}") from None
    body = _strip_query(query)
    try:
        conn.read_only = True
        try:
            with conn.cursor(name="recsys_eval_source") as described:
                described.execute(body)  # DECLARE: planned and described, no row produced
                desc = described.description or []
            if len(desc) != 1:
                raise RecsysEvalError(
                    f"{who}: the query must return exactly one column (a JSON document per "
                    f"row), it returns {len(desc)}"
                )
            oid = desc[0].type_code
            if oid not in PG_TEXT_TYPES and oid != PG_BYTEA:
                info = conn.adapters.types.get(oid)
                raise RecsysEvalError(
                    f"{who}: the query's column is of type {info.name if info else oid}; it must "
                    "hold a JSON document: json, jsonb, text or bytea"
                )
            jsonb = oid == PG_JSONB
            if info is not None:
                info["unique_keys"] = jsonb
            # The query on lines of its own: a trailing `-- comment` cannot swallow the paren.
            with (
                conn.cursor() as cur,
                cur.copy(f"copy (\n{body}\n) to stdout (format binary)") as copy,
            ):
                copy.set_types(["bytea"])  # every value as its bytes, unparsed
                batch: list[Any] = []
                for (value,) in copy.rows():
                    if jsonb and value is not None:
                        if value[:1] != b"\x01":
                            raise RecsysEvalError(
                                f"{who}: unsupported jsonb binary format version {value[:1]!r}"
                            )
                        value = value[1:]
                    batch.append(value)
                    if len(batch) >= fetch_rows:
                        yield batch
                        batch = []
                if batch:
                    yield batch
        except psycopg.Error as exc:
            raise RecsysEvalError(f"{who}: query failed: {scrub(str(exc), dsn)}") from None
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
        with contextlib.suppress(Exception):
            conn.close()


def iter_duckdb(
    dsn: str, query: str, who: str, fetch_rows: int, base_dir: Path | None = None
) -> Iterator[list[Any]]:
    """Batches of the query's single column from a read-only connection to the database file."""
    path = _duckdb_path(dsn, base_dir)
    if path != ":memory:" and not Path(path).is_file():
        raise RecsysEvalError(
            f"{who}: DuckDB database file not found (dsn; looked in the working directory and "
            "beside the dataset file)"
        )
    try:
        con = duckdb.connect(path, read_only=path != ":memory:")
    except duckdb.Error as exc:
        raise RecsysEvalError(f"{who}: cannot open the database: {scrub(str(exc), dsn)}") from None
    try:
        con.execute("set enable_progress_bar = false")
        try:
            cur = con.execute(_strip_query(query))
            desc = cur.description or []
            if len(desc) != 1:
                raise RecsysEvalError(
                    f"{who}: the query must return exactly one column (a JSON document per "
                    f"row), it returns {len(desc)}"
                )
            typ = str(desc[0][1])
            if typ not in DUCKDB_TYPES:
                raise RecsysEvalError(
                    f"{who}: the query's column is of type {typ}; it must hold a JSON document: "
                    "JSON, VARCHAR or BLOB"
                )
            while True:
                rows = cur.fetchmany(fetch_rows)
                if not rows:
                    break
                yield [r[0] for r in rows]
        except duckdb.Error as exc:
            raise RecsysEvalError(f"{who}: query failed: {scrub(str(exc), dsn)}") from None
    finally:
        con.close()


def iter_rows(
    source_type: str,
    dsn: str,
    query: str,
    who: str,
    fetch_rows: int = FETCH_ROWS,
    base_dir: Path | None = None,
    info: dict[str, Any] | None = None,
) -> Iterator[list[Any]]:
    if source_type == "postgres":
        return iter_postgres(dsn, query, who, fetch_rows, info)
    if source_type == "duckdb":
        return iter_duckdb(dsn, query, who, fetch_rows, base_dir)
    raise RecsysEvalError(f"{who}: not a SQL source type: {source_type!r}")


class _Frames:
    """The ledger's hash of the rows (their frames, `sql_rows.frame`) and their total bytes."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def update(self, frames: bytes, n_rows: int) -> None:
        self.sha.update(frames)
        self.size += len(frames) - 8 * n_rows  # each row's frame has an 8-byte head

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def _judged(
    batches: Iterator[list[Any]],
    judge: _Judge,
    tmp_dir: str,
    tally: _Frames,
    *,
    pii_mode: str,
    workers: int | None,
    setup: tuple[dict[str, Any], dict[str, str] | None, str],
    window: int,
    info: dict[str, Any],
) -> Generator[_ChunkResult, None, None]:
    """The batches' verdicts (chunk files and counts), in row order.

    A thread reads the batches, hashes their frames into `tally` (the ledger's SHA-256) and
    hands them on, up to `window` batches ahead, while the caller inserts earlier ones: to
    `workers` worker processes (sql_rows; None: 2 once the source has had PARALLEL_MIN_ROWS
    rows, 0: none), else judged in the thread. `info["unique_keys"]` (set by the source before
    its first batch): no document repeats a key. Errors come out in order; stopping early (an
    error, Ctrl-C) closes the source and kills the workers."""
    channel: queue.Queue[Any] = queue.Queue(maxsize=max(1, window))
    stop = threading.Event()
    done = object()
    pools: list[_WorkerPool] = []

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        last: Any = done
        first = 1
        try:
            for index, batch in enumerate(batches, 1):
                rows = [_as_bytes(v) for v in batch]
                data = frame(rows)
                tally.update(data, len(rows))
                task = _Task(
                    index, os.path.join(tmp_dir, f"r{index:07d}.frames"), first - 1, len(data),
                    False, False, tmp_dir, pii_mode,
                    UNIQUE_ROWS_TASK if info.get("unique_keys") else ROWS_TASK,
                )  # fmt: skip
                wanted = workers
                if wanted is None:  # 2 once PARALLEL_MIN_ROWS rows came before this batch
                    wanted = 2 if first - 1 >= PARALLEL_MIN_ROWS else 0
                first += len(rows)
                if wanted and not pools and not stop.is_set():
                    schema, event_types, key = setup
                    pools.append(_WorkerPool(wanted, schema, event_types, key, WORKER_MODULE))
                if pools:
                    with open(task.path, "wb") as fh:
                        fh.write(data)
                    del data
                    pools[0].submit(task)
                    item: Any = pools[0]
                else:
                    item = judge_rows(judge, rows, task)
                if not put(item):
                    break
        except BaseException as exc:
            last = exc
        finally:
            with contextlib.suppress(Exception):
                batches.close()  # type: ignore[attr-defined]
        put(last)

    thread = threading.Thread(target=produce, name="recsys-eval-sql-read", daemon=True)
    thread.start()
    try:
        while True:
            item = channel.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item.next_result() if isinstance(item, _WorkerPool) else item
        if pools:
            pools[0].close()
    finally:
        stop.set()
        thread.join(timeout=10)
        for pool in pools:
            pool.kill()


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise RecsysEvalError(f"internal error: a SQL source returned a {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# The load


def load_sql_source(
    con: duckdb.DuckDBPyConnection,
    schema_name: str,
    name: str,
    source_type: str,
    dsn: str,
    query: str,
    table: str | None = None,
    *,
    pii_guard: str = "off",
    base_dir: Path | None = None,
    fetch_rows: int = FETCH_ROWS,
    insert_rows: int = INSERT_ROWS,
    rows: Iterator[list[Any]] | None = None,
    label: str | None = None,
    event_types: dict[str, str] | None = None,
    event_types_key: str = "event_types",
    workers: int | None = None,
) -> LoadResult:
    """Validate and load the rows of one SQL source into `raw.<table>`, in one transaction.

    `name` is the dataset's name for the source (exposures, outcomes, ...): messages say
    `exposures (postgres:<query hash>)`. Rows identical to a load already in the table are not
    loaded again (the result says skipped_duplicate). Raises RecsysEvalError (one line, no DSN)
    for a connection or query failure; nothing is written then.

    `rows` (batches of documents) replaces the query's rows and `label` the source_file: the
    tabular sources (recsys_eval.tabular_sources) build the documents in SQL. `event_types`
    (outcome.v1): source event name -> contract type, as for a JSONL file. `workers`: how many
    worker processes judge the rows (None: 2 once the source has had PARALLEL_MIN_ROWS rows; 0:
    this process only); the verdicts are the same either way."""
    t0 = time.perf_counter()
    pii = privacy.check_mode(pii_guard)
    ref = schema_registry.resolve(schema_name)
    target = check_table_name(table or default_table(ref.name))
    layout = layout_for(ref.name)
    label = label or describe(source_type, query)
    who = f"{name} ({label})"
    mapping = loader._mapping_text(event_types)
    started_at = _utcnow()
    ensure_raw_schema(con)
    _ensure_table(con, target, layout)
    judge = _Judge(ref.schema, pii, event_types, event_types_key)
    data_sql, quarantine_sql = _insert_sql(target, layout)
    tmp_dir = tempdirs.create(tempdirs.LOAD_PREFIX)  # swept if we are killed
    tally = _Frames()
    total_bytes = rows_read = loaded = quarantined = 0
    pii_counts: dict[str, int] = {}
    unmapped: dict[str, int] = {}
    saved_order = con.execute("select current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("set preserve_insertion_order = false")
    verdicts: Generator[_ChunkResult, None, None] | None = None
    con.execute("begin transaction")
    try:
        seq = int(
            con.execute("select coalesce(max(load_seq), 0) + 1 from raw.load_ledger").fetchone()[0]
        )
        load_id = _new_load_id()
        params = [load_id, seq, label]
        qparams = [load_id, seq, label, ref.name, target, started_at]
        pending: list[tuple[str, int]] = []
        pending_rows = 0
        pending_first = 1

        def flush(last: int) -> int:
            """Insert the pending files (rows pending_first..last); move any whose timestamp the
            warehouse cannot hold to the quarantine; return how many were moved."""
            con.execute(_fill_batch(data_sql, pending), params)
            moved = _quarantine_bad_timestamps(
                con, [f for f, _ in pending], target, ref.name, load_id, seq, label,
                started_at, pending_first, last,
            )  # fmt: skip
            for f, _ in pending:
                os.unlink(f)
            pending.clear()
            return moved

        info: dict[str, Any] = {}
        if rows is None:
            rows = iter_rows(source_type, dsn, query, who, fetch_rows, base_dir, info)
        verdicts = _judged(
            rows, judge, str(tmp_dir), tally, pii_mode=pii, workers=workers,
            setup=(ref.schema, event_types, event_types_key),
            window=max(4, WINDOW_ROWS // max(1, fetch_rows)), info=info,
        )  # fmt: skip
        for res in verdicts:
            rows_read += res.lines
            for key, n in res.pii.items():
                pii_counts[key] = pii_counts.get(key, 0) + n
            for key, n in res.unmapped.items():
                unmapped[key] = unmapped.get(key, 0) + n
            if res.data_path:
                pending.append((res.data_path, 0))
                pending_rows += res.valid
                loaded += res.valid
            if res.quarantine_path:
                con.execute(_fill(quarantine_sql, res.quarantine_path, 0), qparams)
                os.unlink(res.quarantine_path)
                quarantined += res.quarantined
            if pending_rows >= insert_rows:
                moved = flush(rows_read)
                loaded -= moved
                quarantined += moved
                pending_rows = 0
                pending_first = rows_read + 1
        if pending:
            moved = flush(rows_read)
            loaded -= moved
            quarantined += moved
        total_bytes = tally.size
        sha = tally.hexdigest()
        dup = con.execute(
            "select load_id, load_seq, event_types from raw.load_ledger where file_sha256 = ? "
            "and target_table = ? order by load_seq limit 1",
            [sha, target],
        ).fetchone()
        if dup is not None and dup[2] != mapping:
            raise RecsysEvalError(
                f"{who}: its rows were loaded into raw.{target} by load {dup[0]} with "
                f"{loader._describe_mapping(dup[2])}; this load has "
                f"{loader._describe_mapping(mapping)}: loading them again would hold them twice, "
                "so nothing was written. Load it into a fresh --database, or with the earlier "
                "load's mapping"
            )
        if dup is not None:
            con.execute("rollback")
            return LoadResult(
                load_id=dup[0],
                load_seq=int(dup[1]),
                table=target,
                source_file=label,
                file_sha256=sha,
                lines_read=0,
                rows_loaded=0,
                rows_quarantined=0,
                blank_lines=0,
                skipped_duplicate=True,
                seconds=time.perf_counter() - t0,
            )
        if rows_read != loaded + quarantined:
            raise RecsysEvalError(
                f"internal error: counts do not add up for {who} ({rows_read} rows read, "
                f"{loaded} loaded, {quarantined} quarantined)"
            )
        con.execute(
            f"insert into raw.load_ledger ({_LEDGER_COLUMNS}) values ({', '.join('?' * 19)})",
            [
                seq,
                load_id,
                ref.name,
                target,
                label,
                sha,
                total_bytes,
                rows_read,
                loaded,
                quarantined,
                0,
                started_at,
                _utcnow(),
                0,
                total_bytes,
                1,
                None,
                mapping,
                None
                if event_types is None
                else orjson.dumps(unmapped, option=orjson.OPT_SORT_KEYS).decode(),
            ],
        )
        con.execute("commit")
    except BaseException as exc:
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        if isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower():
            raise KeyboardInterrupt from exc
        if isinstance(exc, duckdb.Error):
            raise RecsysEvalError(
                f"loading {who} failed, nothing was written: {scrub(str(exc), dsn)}"
            ) from None
        if isinstance(exc, OSError):
            raise RecsysEvalError(
                f"loading {who} failed, nothing was written: {exc.strerror or exc}"
            ) from None
        raise
    finally:
        if verdicts is not None:  # now, not when the traceback is freed: stops the reading
            verdicts.close()  # thread and the worker processes
        shutil.rmtree(tmp_dir, ignore_errors=True)
        with contextlib.suppress(duckdb.Error):
            con.execute(f"set preserve_insertion_order = {str(saved_order).lower()}")
    return LoadResult(
        load_id=load_id,
        load_seq=seq,
        table=target,
        source_file=label,
        file_sha256=sha,
        lines_read=rows_read,
        rows_loaded=loaded,
        rows_quarantined=quarantined,
        blank_lines=0,
        skipped_duplicate=False,
        seconds=time.perf_counter() - t0,
        pii_findings=pii_counts,
        end_byte=total_bytes,
        unmapped_event_types=unmapped,
    )


def _quarantine_bad_timestamps(
    con: duckdb.DuckDBPyConnection,
    files: list[str],
    table: str,
    schema_name: str,
    load_id: str,
    seq: int,
    label: str,
    now: Any,
    first: int,
    last: int,
) -> int:
    """Move the just-inserted rows (first..last) whose `ts` DuckDB cannot represent into the
    quarantine (as the JSONL loader does), keeping the validated document as their raw text."""
    if not layout_for(schema_name).has_ts:
        return 0
    bad = con.execute(
        f"select line_no, ts is null from {RAW_SCHEMA}.{table} where load_id = ? "
        f"and line_no between ? and ? and {_BAD_TS}",
        [load_id, first, last],
    ).fetchall()
    if not bad:
        return 0
    wanted = {int(r[0]) for r in bad}
    uncast = {int(r[0]) for r in bad if r[1]}
    docs: dict[int, bytes] = {}
    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                rec = orjson.loads(line)
                if rec["l"] in wanted:
                    docs[rec["l"]] = orjson.dumps(rec["d"])
    rows = []
    for index in sorted(wanted):
        raw = docs.get(index, b"")
        prefix = bounded_prefix(raw)
        reason = "" if index in uncast else " (in UTC it must fall in the years 1 to 9999)"
        error = LineError(
            "$.ts",
            RULE_REPRESENTABLE,
            f"timestamp {_ts_of(raw)!r} cannot be represented as a warehouse (DuckDB) timestamp"
            + reason,
        )
        rows.append(
            [
                load_id,
                seq,
                label,
                index,
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
        f"delete from {RAW_SCHEMA}.{table} where load_id = ? and line_no between ? and ? "
        f"and {_BAD_TS}",
        [load_id, first, last],
    )
    con.executemany(
        f"insert into raw.quarantine ({QUARANTINE_COLUMNS}) values ({', '.join('?' * 13)})", rows
    )
    return len(rows)


def load_source(
    con: duckdb.DuckDBPyConnection,
    schema_name: str,
    src: Any,
    table: str,
    pii_guard: str = "off",
    base_dir: Path | None = None,
) -> LoadResult:
    """Load a dataset source of type postgres or duckdb (a `recsys_eval.config.Source`)."""
    who = source_name(src.name, src.type, src.query or "")
    if getattr(src, "event_types", None) is not None:
        raise RecsysEvalError(
            f"{who}: event_types is not supported for SQL sources yet; map the names in the "
            "query (case event_type when ... end) or export the rows to JSONL"
        )
    return load_sql_source(
        con, schema_name, src.name, src.type, src.dsn or "", src.query or "", table,
        pii_guard=pii_guard, base_dir=base_dir,
    )  # fmt: skip
