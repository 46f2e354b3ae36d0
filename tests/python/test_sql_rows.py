"""SQL sources judged in worker processes (recsys_eval.sql_rows): the same verdicts, rows,
quarantine entries, ledger and counts as judging every row in the reading process, whatever the
batch boundaries; the frames are the bytes the ledger's SHA-256 is defined over; an error midway
stops the workers and writes nothing. DuckDB files serve the rows (no server needed); the
Postgres path through the same code is in test_sql_sources.py."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import duckdb
import pytest
from conftest import EXAMPLES

from recsys_eval import sql_sources
from recsys_eval.errors import RecsysEvalError
from recsys_eval.sql_rows import frame, unframe
from recsys_eval.sql_sources import load_sql_source

TINY = EXAMPLES / "tiny"


def _docs(name: str) -> list[str]:
    return [ln for ln in (TINY / f"{name}.jsonl").read_text().split("\n") if ln.strip()]


def _exposure_corpus() -> list[str | None]:
    good = _docs("exposures")
    doc = json.loads(good[0])
    pretty = json.dumps(doc, indent=2)  # one document over several lines: valid
    email = dict(doc, user_id="jane.doe@example.com")  # a PII finding
    extra_item_key = dict(doc, items=[dict(doc["items"][0], note="x")])  # items are open
    year0 = dict(doc, ts="0001-01-01T00:00:00+01:00")  # year 0 in UTC
    bad = [
        '{"request_id": "r-x", "user_id": ',  # not JSON
        '{"request_id": "r-y", "user_id": "u", "ts": "2025-01-01T00:00:00Z", '
        '"items": [{"item_id": "a", "rank": 0}]}',  # rank >= 1
        None,  # NULL
        '{"request_id": "r-d", "request_id": "r-e", "user_id": "u", '
        '"ts": "2025-01-01T00:00:00Z", "items": []}',  # repeated key
        "",  # no document
        json.dumps(year0),
        '{"request_id": "r-f", "user_id": "u", "ts": "2025-01-01T00:00:00Z", '
        '"items": [{"item_id": "a", "rank": 1.0}]}',  # 1.0 is an integer: the validator's path
        "\ufeff" + good[1],  # a BOM is not whitespace in a row
    ]
    rows: list[str | None] = []
    for k in range(6):  # 6 rounds of 15 rows
        rows += [*good, pretty, json.dumps(email), json.dumps(extra_item_key), *bad]
        rows.append(json.dumps(dict(doc, request_id=f"r-{k}")))
    assert len(good) == 3 and len(bad) == 8
    return rows


def _source(tmp_path: Path, rows: list[str | None], name: str = "src") -> str:
    db = tmp_path / f"{name}.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table t (id int, doc varchar)")
    con.executemany("insert into t values (?, ?)", [[i, r] for i, r in enumerate(rows, 1)])
    con.close()
    return str(db)


def _snapshot(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, list]:
    cur = con.execute(f"select * exclude (load_id) from raw.{table} order by line_no")
    names = [d[0] for d in cur.description]
    return {
        "rows": [dict(zip(names, row, strict=True)) for row in cur.fetchall()],
        "quarantine": con.execute(
            "select * exclude (load_id, quarantined_at) from raw.quarantine order by line_no"
        ).fetchall(),
        "ledger": con.execute(
            "select * exclude (load_id, started_at, finished_at) from raw.load_ledger"
        ).fetchall(),
    }


def _load(db: str, workers: int | None, fetch_rows: int, **kw) -> tuple[dict, object]:
    con = duckdb.connect()
    result = load_sql_source(
        con, kw.pop("schema", "exposure.v1"), "src", "duckdb", db, "select doc from t order by id",
        workers=workers, fetch_rows=fetch_rows, insert_rows=kw.pop("insert_rows", 11), **kw,
    )  # fmt: skip
    snap = _snapshot(con, result.table)
    con.close()
    return snap, result


def test_frames_are_the_bytes_the_ledger_hashes() -> None:
    rows = [b'{"a": 1}', None, b"", b"\xff\n\x00" * 100]
    data = frame(rows)
    by_hand = b"".join(b"\xff" * 8 if r is None else len(r).to_bytes(8, "big") + r for r in rows)
    assert data == by_hand and unframe(data) == rows
    with pytest.raises(RecsysEvalError, match="truncated"):
        unframe(data[:-1])


@pytest.mark.parametrize("pii_guard", ["off", "reject"])
def test_workers_give_the_in_process_load(tmp_path: Path, pii_guard: str) -> None:
    fetch_rows = 7  # batches that start anywhere in the corpus's 15-row rounds
    rows = _exposure_corpus()
    db = _source(tmp_path, rows)
    alone, first = _load(db, 0, fetch_rows, pii_guard=pii_guard)
    pooled, second = _load(db, 2, fetch_rows, pii_guard=pii_guard)
    assert pooled == alone
    assert (second.lines_read, second.rows_loaded, second.rows_quarantined) == (
        first.lines_read, first.rows_loaded, first.rows_quarantined,
    )  # fmt: skip
    assert second.pii_findings == first.pii_findings
    # Hand-derived: 15 rows a round, of which 8 valid (3 good, pretty, email, extra item key,
    # 1.0 rank, the renamed copy) and 7 bad (not JSON, rank 0, NULL, repeated key, empty,
    # year 0, BOM); reject mode quarantines the email row too.
    rejected = 6 if pii_guard == "reject" else 0
    assert first.lines_read == len(rows) == 90
    assert (first.rows_loaded, first.rows_quarantined) == (48 - rejected, 42 + rejected)
    assert first.pii_findings == ({} if pii_guard == "off" else {"user_id|email": 6})
    # The ledger hashes the frames of the rows, computed here by hand.
    sha = hashlib.sha256()
    for row in rows:
        sha.update(b"\xff" * 8 if row is None else len(row.encode()).to_bytes(8, "big"))
        sha.update(b"" if row is None else row.encode())
    assert first.file_sha256 == second.file_sha256 == sha.hexdigest()


def test_workers_start_midway_and_map_event_types(tmp_path: Path, monkeypatch) -> None:
    """workers=None: this process judges the first PARALLEL_MIN_ROWS rows, then two workers;
    an outcome mapping's verdicts and unmapped counts add up the same."""
    monkeypatch.setattr(sql_sources, "PARALLEL_MIN_ROWS", 9)
    good = json.loads(_docs("outcomes")[0])
    rows: list[str | None] = []
    for k in range(30):
        name = ("tap", "purchase", "add_to_cart")[k % 3]
        rows.append(json.dumps(dict(good, event_type=name, request_id=f"r{k}")))
    db = _source(tmp_path, rows)
    mapping = {"tap": "click", "purchase": "conversion"}
    kw = {"schema": "outcome.v1", "event_types": mapping}
    alone, first = _load(db, 0, 4, **kw)
    pooled, second = _load(db, None, 4, **kw)
    assert pooled == alone
    assert first.unmapped_event_types == second.unmapped_event_types == {"add_to_cart": 10}
    assert {r["event_type"] for r in pooled["rows"]} == {"click", "conversion"}  # stored mapped
    assert len(pooled["rows"]) == 20


def _children() -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        text = (task / "children").read_text() if (task / "children").exists() else ""
        out |= {int(p) for p in text.split()}
    return out


def test_an_error_midway_stops_the_workers_and_writes_nothing(tmp_path: Path) -> None:
    rows = _exposure_corpus()
    db = _source(tmp_path, rows)
    before = _children()
    con = duckdb.connect()
    query = "select case when id = 80 then error('boom at 80') else doc end from t order by id"
    with pytest.raises(RecsysEvalError, match="query failed: .*boom at 80"):
        load_sql_source(
            con, "exposure.v1", "src", "duckdb", db, query, workers=2, fetch_rows=5, insert_rows=11
        )
    assert _children() <= before  # the worker processes were stopped and reaped
    written = con.execute(
        "select (select count(*) from raw.exposures) + (select count(*) from raw.quarantine) "
        "+ (select count(*) from raw.load_ledger)"
    ).fetchone()[0]
    assert written == 0


def test_a_failed_insert_stops_the_workers_at_once(tmp_path: Path, monkeypatch) -> None:
    """An error in the inserting thread (here the first insert) stops the reading thread and the
    workers before the error reaches the caller (not when its traceback is freed)."""
    db = _source(tmp_path, _exposure_corpus())
    before = _children()

    def boom(*args: object) -> str:
        raise RuntimeError("insert failed")

    monkeypatch.setattr(sql_sources, "_fill_batch", boom)
    con = duckdb.connect()
    with pytest.raises(RuntimeError, match="insert failed") as caught:
        load_sql_source(
            con, "exposure.v1", "src", "duckdb", db, "select doc from t order by id",
            workers=2, fetch_rows=5, insert_rows=11,
        )  # fmt: skip
    assert caught.tb is not None  # the traceback, and so the load's frame, are still alive
    assert _children() <= before
    assert con.execute("select count(*) from raw.load_ledger").fetchone()[0] == 0


def test_workers_start_only_after_parallel_min_rows(tmp_path: Path, monkeypatch) -> None:
    """workers=None: a source of at most PARALLEL_MIN_ROWS rows is judged in this process."""
    monkeypatch.setattr(sql_sources, "PARALLEL_MIN_ROWS", 12)
    started: list[int] = []

    class Pool:
        def __init__(self, n: int, *args: object) -> None:
            started.append(n)
            raise RuntimeError("worker pool started")

    monkeypatch.setattr(sql_sources, "_WorkerPool", Pool)
    rows: list[str | None] = [_docs("exposures")[0]] * 13
    _load(_source(tmp_path, rows[:12], "twelve"), None, 4)  # 3 batches, 12 rows: no pool
    assert started == []
    with pytest.raises(RuntimeError, match="worker pool started"):
        _load(_source(tmp_path, rows, "thirteen"), None, 4)  # the 4th batch: after 12 rows
    assert started == [2]
