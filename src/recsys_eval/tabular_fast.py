"""The fast path of the tabular sources: SQL proves most records valid and inserts them typed.

For the contracts whose fields map onto plain column types (exposure.v1, outcome.v1,
assignment.v1 with string / integer ids, numbers, booleans, ISO / timestamp / epoch `ts`, a
`map(varchar, varchar)` context and a list of item structs or item rows) SQL in the warehouse
connection numbers every record in the documented order and computes, per record, the raw
table's typed columns and `ok`: SQL predicates that hold only when the contract holds (required
fields present, minLength, enum, minimum, finite numbers, a date-time in a strict RFC 3339 subset
with a 4-digit year, no NULL inside a context map or an item list). Those records are inserted
as they are, never turned into JSON. Every other record (`ok` false: some rule may be broken, or
SQL cannot tell) gets its JSON document built in SQL and is judged by the loader's one definition
of valid, so the verdicts and the error lists are the validator's: `ok` is only ever a sufficient
condition, never a second definition of valid. Without the fast path (other column types, the
PII guard on, an event_types mapping) every record takes the validator's path
(recsys_eval.sql_sources.load_sql_source).

No sort carries the records: ORDER numbers them from their order key and position only (a
narrow window; for Parquet item rows over a narrow aggregation of request_id and the key), and
the typed records are written once. Parquet nested rows (the position is the file's and the
row's number, given by the reader) and Parquet item rows (one aggregation per request, joined
to ORDER by request_id) go from the files into the raw table in one INSERT ... SELECT that
evaluates each record's `ok` once; the records it left out are ORDER's lines not in the raw
table (BADLINES, an anti-join of two narrow tables), so the source is not judged again to find
them. Parquet nested rows already in the documented order within each file (line_no - row
constant per file, read off ORDER: logs written in time order) take line_no from the row's
number plus its file's offset, so that insert needs no join to ORDER either. Other sources (the
position is itself a window; every scan reads whole rows) are computed once into STAGE,
numbered from STAGE's key columns and inserted joined by rowid. Documents are built, in a
second query, only when some record was not proven valid, and only for those records.

Ledger identity: file_sha256 is the SHA-256 of the records' hashes in order (DuckDB's `hash` of
the typed columns of a record proven valid, read back from the rows just inserted; the MD5 of
the document of any other), file_size the number of records. A duplicate is found after the
insert and rolled back (nothing is written).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

import duckdb

from recsys_eval import loader, privacy, schema_registry, tempdirs
from recsys_eval.errors import RecsysEvalError
from recsys_eval.loader import RAW_SCHEMA, LoadResult
from recsys_eval.sql_sources import (
    _LEDGER_COLUMNS,
    _as_bytes,
    _Judge,
    _quarantine_bad_timestamps,
    scrub,
)

STAGE = "__rse_stage"  # the records' typed columns, when computed before they are numbered
ORDER = "__rse_order"  # a record's key -> its line_no (the documented order)
BAD = "__rse_bad"  # line_no and document of the records not proven valid
BADLINES = "__rse_badlines"  # the line_no of the records the insert left out (`by_lines`)
LINE = "__rse_line"  # ORDER's line_no column
ATTACHED = "__rse_src"  # a DuckDB source file, attached read-only to the warehouse
FETCH = 10_000
OFFSETS = "@OFFSETS@"  # in FastSql.positional: the list of each file's line_no - row


@dataclass
class FastSql:
    """The fast path of one planned source (built by recsys_eval.tabular_sources._Fast).

    `prepare` runs first (temporary tables: ORDER, and STAGE when the records are computed
    before they are numbered); `rows` selects (line_no, the raw table's columns) of the records
    SQL proves valid, `bad` (line_no, document) of the others."""

    prepare: list[str]
    rows: str
    bad: str
    # `bad` selects the records whose line_no is in BADLINES (ORDER's lines the insert left
    # out), filled before it runs; else it finds them itself
    by_lines: bool = False
    # Positions of the form (file << 40) + row: `offsets` gives (file, min, max) of line_no - row
    # per file; when min = max for every file, `positional` (`rows` without the join to ORDER:
    # line_no = row + the file's offset, the list literal OFFSETS indexed by file + 1) is used.
    offsets: str | None = None
    positional: str | None = None


def available(plan: Any, pii_guard: str, event_types: dict[str, str] | None) -> bool:
    return plan.stage is not None and pii_guard == "off" and event_types is None


def _positional(con: duckdb.DuckDBPyConnection, fast: FastSql, params: list[Any]) -> str | None:
    """`fast.positional` with its offsets, when every file's rows are in the documented order."""
    if fast.offsets is None or fast.positional is None:
        return None
    spans = con.execute(fast.offsets, params if "$1" in fast.offsets else []).fetchall()
    if not spans or any(lo != hi for _, lo, hi in spans):
        return None
    offsets = ["null"] * (max(int(f) for f, _, _ in spans) + 1)
    for f, lo, _ in spans:
        offsets[int(f)] = str(int(lo))
    return fast.positional.replace(OFFSETS, "[" + ", ".join(offsets) + "]::bigint[]")


def load_fast(
    con: duckdb.DuckDBPyConnection,
    schema_name: str,
    plan: Any,
    table: str | None,
    copy_postgres: Any,
) -> LoadResult:
    """Load the records of a planned tabular source through the fast path, in one transaction."""
    t0 = time.perf_counter()
    ref = schema_registry.resolve(schema_name)
    target = loader.check_table_name(table or loader.default_table(ref.name))
    layout = loader.layout_for(ref.name)
    who, label = plan.who, plan.label
    started_at = loader._utcnow()
    loader.ensure_raw_schema(con)
    loader._ensure_table(con, target, layout)
    judge = _Judge(ref.schema, privacy.check_mode("off"))
    data_sql, quarantine_sql = loader._insert_sql(target, layout)
    tmp_dir = tempdirs.create(tempdirs.LOAD_PREFIX)
    params = list(plan.params)
    attached = False
    columns = ", ".join(c[0] for c in layout.columns)
    try:
        if plan.pg_copy is not None:
            staging = os.path.join(tmp_dir, "table.csv")
            copy_postgres(plan, staging)
            params = [staging]
        elif plan.database != ":memory:":
            con.execute(f"attach {loader._sql_str(plan.database)} as {ATTACHED} (read_only)")
            attached = True
        con.execute("begin transaction")
        try:
            seq = int(
                con.execute(
                    "select coalesce(max(load_seq), 0) + 1 from raw.load_ledger"
                ).fetchone()[0]
            )
            load_id = loader._new_load_id()
            fast = plan.stage
            for statement in fast.prepare:
                con.execute(statement, params if "$1" in statement else [])
            # numbered parameters: $1 is the source's (the files), if it has one
            rows = _positional(con, fast, params) or fast.rows
            lineage = [*(params if "$1" in rows else []), load_id, seq, label]
            first = len(lineage) - 2
            fast_rows = con.execute(
                f"insert into {RAW_SCHEMA}.{target} (load_id, load_seq, source_file, line_no, "
                f"{columns}) select ${first}, ${first + 1}, ${first + 2}, * from ({rows})",
                lineage,
            ).fetchone()[0]
            n = int(con.execute(f"select count(*) from {ORDER}").fetchone()[0])
            if fast_rows < n:  # else no record needs a document
                if fast.by_lines:
                    con.execute(
                        f"create temp table {BADLINES} as select {LINE} from {ORDER} anti join "
                        f"(select line_no from {RAW_SCHEMA}.{target} where load_id = ?) as r on "
                        f"r.line_no = {ORDER}.{LINE}",
                        [load_id],
                    )
                con.execute(
                    f"create temp table {BAD} as {fast.bad}", params if "$1" in fast.bad else []
                )
            else:
                con.execute(f"create temp table {BAD} ({LINE} bigint, doc varchar)")
            # The ledger identity: the records' hashes in line_no order (the typed columns'
            # `hash` as loaded, the MD5 of the document of a record not proven valid).
            sha = con.execute(
                f"select sha256(coalesce(string_agg(h, ',' order by l), "
                f"'')) from (select line_no as l, hash({columns})::varchar as h "
                f"from {RAW_SCHEMA}.{target} where load_id = ? union all select {LINE}, md5(doc) "
                f"from {BAD})",
                [load_id],
            ).fetchone()[0]
            dup = con.execute(
                "select load_id, load_seq, event_types from raw.load_ledger where "
                "file_sha256 = ? and target_table = ? order by load_seq limit 1",
                [sha, target],
            ).fetchone()
            if dup is not None:
                con.execute("rollback")
                return LoadResult(
                    load_id=dup[0], load_seq=int(dup[1]), table=target, source_file=label,
                    file_sha256=sha, lines_read=0, rows_loaded=0, rows_quarantined=0,
                    blank_lines=0, skipped_duplicate=True, seconds=time.perf_counter() - t0,
                )  # fmt: skip
            loaded, quarantined = int(fast_rows), 0
            cur = con.execute(f"select {LINE}, doc from {BAD} order by {LINE}").fetchall()
            out: list[bytes] = []
            bad: list[bytes] = []
            for line_no, doc in cur:
                good, wrong = judge.rows([_as_bytes(doc)], int(line_no))
                out += good
                bad += wrong
            qparams = [load_id, seq, label, ref.name, target, started_at]
            if bad:
                qpath = os.path.join(tmp_dir, "q.ndjson")
                with open(qpath, "wb") as fh:
                    fh.write(b"\n".join(bad) + b"\n")
                con.execute(loader._fill(quarantine_sql, qpath, 0), qparams)
                quarantined += len(bad)
            if out:
                path = os.path.join(tmp_dir, "c.ndjson")
                with open(path, "wb") as fh:
                    fh.write(b"\n".join(out) + b"\n")
                con.execute(loader._fill_batch(data_sql, [(path, 0)]), [load_id, seq, label])
                moved = _quarantine_bad_timestamps(
                    con, [path], target, ref.name, load_id, seq, label, started_at, 1, int(n)
                )
                loaded += len(out) - moved
                quarantined += moved
            if loaded + quarantined != n:
                raise RecsysEvalError(
                    f"internal error: counts do not add up for {who} ({n} records, {loaded} "
                    f"loaded, {quarantined} quarantined)"
                )
            for temp in (BAD, BADLINES, ORDER, STAGE):
                con.execute(f"drop table if exists {temp}")
            con.execute(
                f"insert into raw.load_ledger ({_LEDGER_COLUMNS}) values "
                f"({', '.join('?' * 19)})",
                [seq, load_id, ref.name, target, label, sha, int(n), int(n), loaded, quarantined,
                 0, started_at, loader._utcnow(), 0, int(n), 1, None, None, None],
            )  # fmt: skip
            con.execute("commit")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("rollback")
            raise
    except duckdb.Error as exc:
        raise RecsysEvalError(
            f"loading {who} failed, nothing was written: {scrub(str(exc), plan.dsn)}"
        ) from None
    finally:
        for temp in (BAD, BADLINES, ORDER, STAGE):
            with contextlib.suppress(duckdb.Error):
                con.execute(f"drop table if exists {temp}")
        if attached:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"detach {ATTACHED}")
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return LoadResult(
        load_id=load_id, load_seq=seq, table=target, source_file=label, file_sha256=sha,
        lines_read=int(n), rows_loaded=loaded, rows_quarantined=quarantined, blank_lines=0,
        skipped_duplicate=False, seconds=time.perf_counter() - t0, end_byte=int(n),
    )  # fmt: skip
