"""loader: validated, transactional loads into the raw tables (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from recsys_eval import loader, warehouse
from recsys_eval.cli import main
from recsys_eval.errors import DatabaseLockedError, RecsysEvalError

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def exposure(i: int, **changes: Any) -> dict[str, Any]:
    doc = {
        "request_id": f"r{i}",
        "user_id": f"u{i % 3}",
        "ts": "2025-01-01T00:00:00Z",
        "items": [
            {"item_id": f"i{i}b", "rank": 2, "logging_propensity": 0.25, "target_propensity": 0.5},
            {"item_id": f"i{i}a", "rank": 1, "propensity": 0.75, "score": 9},
        ],
        "context": {"tenant": "t1", "surface": "home"},
        "latency_ms": 10 + i,
        "error": False,
    }
    doc.update(changes)
    return doc


def jl(*docs: Any) -> bytes:
    return b"".join((d if isinstance(d, bytes) else json.dumps(d).encode()) + b"\n" for d in docs)


@pytest.fixture
def con(tmp_path: Path) -> Any:
    c = warehouse.connect(tmp_path / "wh.duckdb")
    loader.ensure_raw_schema(c)
    yield c
    c.close()


def rows(con: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return con.execute(sql, params or []).fetchall()


def snapshot(con: Any) -> dict[str, list[tuple[Any, ...]]]:
    tables = [
        r[0]
        for r in rows(
            con,
            "select table_name from information_schema.tables "
            "where table_schema = 'raw' order by 1",
        )
    ]
    return {t: rows(con, f"select * from raw.{t} order by all") for t in tables}


def test_ensure_raw_schema_types(con: Any) -> None:
    tables = rows(
        con,
        "select table_name, string_agg(column_name || ' ' || data_type, ', ' order by "
        "ordinal_position) from information_schema.columns where table_schema = 'raw' "
        "group by 1 order by 1",
    )
    lineage = "load_id VARCHAR, load_seq BIGINT, source_file VARCHAR, line_no BIGINT"
    ranklist = (
        f"{lineage}, request_id VARCHAR, user_id VARCHAR, ts TIMESTAMP, items VARCHAR[], "
        "context MAP(VARCHAR, VARCHAR)"
    )
    assert dict(tables) == {
        "assignments": f"{lineage}, experiment_id VARCHAR, variant VARCHAR, request_id VARCHAR, "
        "user_id VARCHAR, ts TIMESTAMP, context MAP(VARCHAR, VARCHAR)",
        "exposures": f"{lineage}, request_id VARCHAR, user_id VARCHAR, ts TIMESTAMP, "
        "items STRUCT(item_id VARCHAR, rank BIGINT, propensity DOUBLE, logging_propensity "
        "DOUBLE, target_propensity DOUBLE)[], context MAP(VARCHAR, VARCHAR), latency_ms DOUBLE, "
        "error BOOLEAN",
        "interleaved_exposures": f"{lineage}, request_id VARCHAR, user_id VARCHAR, ts TIMESTAMP, "
        "items STRUCT(item_id VARCHAR, rank BIGINT, team VARCHAR)[], algorithm VARCHAR, "
        "context MAP(VARCHAR, VARCHAR)",
        "load_ledger": "load_seq BIGINT, load_id VARCHAR, schema_name VARCHAR, target_table "
        "VARCHAR, source_file VARCHAR, file_sha256 VARCHAR, file_size BIGINT, lines_read BIGINT, "
        "rows_loaded BIGINT, rows_quarantined BIGINT, blank_lines BIGINT, started_at TIMESTAMP, "
        "finished_at TIMESTAMP, start_byte BIGINT, bytes_loaded BIGINT, first_line_no BIGINT, "
        "appends_to VARCHAR, event_types VARCHAR, unmapped_event_types VARCHAR",
        "outcomes": f"{lineage}, request_id VARCHAR, user_id VARCHAR, item_id VARCHAR, "
        "event_type VARCHAR, value DOUBLE, ts TIMESTAMP",
        "quarantine": f"{lineage}, schema_name VARCHAR, target_table VARCHAR, raw_text VARCHAR, "
        "errors VARCHAR, error_count INTEGER, quarantined_at TIMESTAMP, line_bytes BIGINT, "
        "line_sha256 VARCHAR, raw_truncated BOOLEAN",
        "ranker_a": ranklist,
        "ranker_b": ranklist,
        "ranklists": ranklist,
    }
    loader.ensure_raw_schema(con)  # idempotent


def test_load_exposures_rows_and_quarantine(con: Any, tmp_path: Path) -> None:
    src = tmp_path / "exp.jsonl"
    src.write_bytes(
        b"\xef\xbb\xbf"
        + jl(exposure(1, ts="2025-01-01t05:30:00+05:30"))
        + b"\n   \r\n"
        + jl(exposure(2, user_id=7, extra="x"), exposure(3)).replace(b"\n", b"\r\n", 1)
        + b'{"request_id": "r\xff"}\n'
        + b"not json\n"
        + jl(exposure(6, ts="2025-01-01T23:59:60Z"))
        + json.dumps(exposure(7)).encode()[:40]
    )
    res = loader.load_file(con, "exposure.v1", src)
    assert (res.table, res.lines_read, res.rows_loaded, res.rows_quarantined, res.blank_lines) == (
        "exposures",
        9,
        2,
        5,
        2,
    )
    assert (res.skipped_duplicate, res.bom, res.crlf_lines, res.load_seq) == (False, True, 2, 1)
    assert res.source_file == str(src.resolve())
    assert res.load_id.startswith("load-") and len(res.load_id.split("-")[-1]) == 8

    got = rows(
        con,
        "select load_id, load_seq, source_file, line_no, request_id, user_id, ts, "
        "items, context, latency_ms, error from raw.exposures order by line_no",
    )
    assert got == [
        (
            res.load_id,
            1,
            str(src.resolve()),
            1,
            "r1",
            "u1",
            datetime(2025, 1, 1, 0, 0),
            [
                {
                    "item_id": "i1b",
                    "rank": 2,
                    "propensity": None,
                    "logging_propensity": 0.25,
                    "target_propensity": 0.5,
                },
                {
                    "item_id": "i1a",
                    "rank": 1,
                    "propensity": 0.75,
                    "logging_propensity": None,
                    "target_propensity": None,
                },
            ],
            {"tenant": "t1", "surface": "home"},
            11.0,
            False,
        ),
        (
            res.load_id,
            1,
            str(src.resolve()),
            5,
            "r3",
            "u0",
            datetime(2025, 1, 1, 0, 0),
            [
                {
                    "item_id": "i3b",
                    "rank": 2,
                    "propensity": None,
                    "logging_propensity": 0.25,
                    "target_propensity": 0.5,
                },
                {
                    "item_id": "i3a",
                    "rank": 1,
                    "propensity": 0.75,
                    "logging_propensity": None,
                    "target_propensity": None,
                },
            ],
            {"tenant": "t1", "surface": "home"},
            13.0,
            False,
        ),
    ]

    q = rows(
        con,
        "select load_id, load_seq, source_file, line_no, schema_name, target_table, "
        "raw_text, errors, error_count from raw.quarantine order by line_no",
    )
    assert [r[:6] for r in q] == [
        (res.load_id, 1, str(src.resolve()), n, "exposure.v1", "exposures") for n in (4, 6, 7, 8, 9)
    ]
    assert q[0][6] == json.dumps(exposure(2, user_id=7, extra="x"))  # raw text, no \r
    assert json.loads(q[0][7]) == [
        {
            "path": "$",
            "rule": "additionalProperties",
            "message": "Additional properties are not allowed ('extra' was unexpected)",
        },
        {"path": "$.user_id", "rule": "type", "message": "7 is not of type 'string'"},
    ]
    assert q[0][8] == 2
    assert q[1][6] == '{"request_id": "r\ufffd"}'
    assert json.loads(q[1][7]) == [
        {"path": "$", "rule": "utf8", "message": "not valid UTF-8 (byte offset 17)"}
    ]
    assert [json.loads(r[7])[0]["rule"] for r in q[2:]] == ["json", "format", "truncated"]

    ledger = rows(
        con,
        "select load_seq, load_id, schema_name, target_table, source_file, "
        "file_sha256, file_size, lines_read, rows_loaded, rows_quarantined, "
        "blank_lines from raw.load_ledger",
    )
    assert ledger == [
        (
            1,
            res.load_id,
            "exposure.v1",
            "exposures",
            str(src.resolve()),
            res.file_sha256,
            src.stat().st_size,
            9,
            2,
            5,
            2,
        )
    ]


def test_same_file_twice_loads_nothing_new(con: Any, tmp_path: Path) -> None:
    src = tmp_path / "exp.jsonl"
    src.write_bytes(jl(exposure(1), exposure(2)))
    first = loader.load_file(con, "exposure.v1", src)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(src.read_bytes())
    second = loader.load_file(con, "exposure.v1", copy)
    assert second.skipped_duplicate is True
    assert (second.load_id, second.load_seq, second.file_sha256) == (
        first.load_id,
        1,
        first.file_sha256,
    )
    assert (second.lines_read, second.rows_loaded) == (0, 0)
    assert rows(con, "select count(*) from raw.exposures") == [(2,)]
    assert rows(con, "select count(*) from raw.load_ledger") == [(1,)]
    # Another table is another load; other content under another name is new too (the same
    # path with changed content is refused: tests/python/test_load_append.py).
    other = loader.load_file(con, "exposure.v1", src, table="exposures_b")
    assert (other.skipped_duplicate, other.load_seq, other.rows_loaded) == (False, 2, 2)
    changed = tmp_path / "changed.jsonl"
    changed.write_bytes(jl(exposure(1), exposure(3)))
    assert loader.load_file(con, "exposure.v1", changed).rows_loaded == 2
    assert rows(con, "select count(*), max(load_seq) from raw.exposures") == [(4, 3)]


def test_missing_and_unreadable_files(con: Any, tmp_path: Path) -> None:
    with pytest.raises(RecsysEvalError) as info:
        loader.load_file(con, "exposure.v1", tmp_path / "nope.jsonl")
    assert str(info.value) == f"input file not found: {tmp_path / 'nope.jsonl'}"
    with pytest.raises(RecsysEvalError, match="input is not a regular file"):
        loader.load_file(con, "exposure.v1", tmp_path)


def test_empty_file(con: Any, tmp_path: Path) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    res = loader.load_file(con, "outcome.v1", src)
    assert (res.lines_read, res.rows_loaded, res.rows_quarantined, res.blank_lines) == (0, 0, 0, 0)
    assert rows(con, "select lines_read from raw.load_ledger") == [(0,)]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_mid_load_rolls_back(
    con: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_bytes(jl(exposure(0), b"bad"))
    loader.load_file(con, "exposure.v1", earlier)
    before = snapshot(con)

    src = tmp_path / "big.jsonl"
    src.write_bytes(jl(*[exposure(i) for i in range(200)], b"bad"))
    real = loader._process_chunk
    calls = []

    def failing(task: Any) -> Any:
        calls.append(task.index)
        if task.index == 3:
            raise exc
        return real(task)

    monkeypatch.setattr(loader, "_process_chunk", failing)
    with pytest.raises(type(exc)):
        loader.load_file(con, "exposure.v1", src, workers=0, chunk_bytes=4096, batch_rows=1)
    assert calls == [0, 1, 2, 3]  # chunks 0-2 were inserted before the failure
    assert snapshot(con) == before
    monkeypatch.setattr(loader, "_process_chunk", real)
    res = loader.load_file(con, "exposure.v1", src, workers=0, chunk_bytes=4096, batch_rows=1)
    assert (res.rows_loaded, res.rows_quarantined, res.load_seq) == (200, 1, 2)


def test_chunks_keep_line_numbers(con: Any, tmp_path: Path) -> None:
    docs: list[Any] = [exposure(i) for i in range(300)]
    docs[0] = b""
    docs[150] = b"{oops"
    docs[299] = exposure(299, items=[{"item_id": "x", "rank": 0}])
    src = tmp_path / "e.jsonl"
    src.write_bytes(jl(*docs))
    res = loader.load_file(con, "exposure.v1", src, workers=0, chunk_bytes=2048, batch_rows=50)
    assert (res.lines_read, res.rows_loaded, res.rows_quarantined, res.blank_lines) == (
        300,
        297,
        2,
        1,
    )
    assert rows(
        con,
        "select count(*), min(line_no), max(line_no), count(distinct line_no), "
        "bool_and(request_id = 'r' || (line_no - 1)) from raw.exposures",
    ) == [(297, 2, 299, 297, True)]
    assert rows(con, "select line_no from raw.quarantine order by 1") == [(151,), (300,)]


def test_worker_pool_gives_the_same_result(con: Any, tmp_path: Path) -> None:
    docs: list[Any] = [exposure(i) for i in range(2000)]
    docs[777] = b"[]"
    src = tmp_path / "e.jsonl"
    src.write_bytes(jl(*docs))
    res = loader.load_file(con, "exposure.v1", src, workers=2, chunk_bytes=16384, batch_rows=300)
    assert (res.lines_read, res.rows_loaded, res.rows_quarantined) == (2000, 1999, 1)
    assert rows(
        con,
        "select count(distinct line_no), sum(line_no), "
        "bool_and(request_id = 'r' || (line_no - 1)) from raw.exposures",
    ) == [(1999, 2001000 - 778, True)]
    assert rows(con, "select line_no, errors from raw.quarantine") == [
        (778, '[{"path":"$","rule":"type","message":"[] is not of type \'object\'"}]')
    ]


def test_values_the_warehouse_cannot_hold_are_quarantined(con: Any, tmp_path: Path) -> None:
    src = tmp_path / "e.jsonl"
    big = json.dumps(exposure(1)).replace('"rank": 2', '"rank": 9223372036854775808')
    huge = json.dumps(exposure(2)).replace('"rank": 2', '"rank": 123456789012345678901234567890')
    surrogate = json.dumps(exposure(3)).replace('"u0"', '"\\ud800"')
    dup = (
        '{"request_id":"a","request_id":"r4","user_id":"u","ts":"2025-01-01T00:00:00Z",'
        '"items":[{"item_id":"x","rank":"no","rank":1.0}],"context":{"k":"1","k":"2"}}'
    )
    src.write_text("\n".join([big, huge, surrogate, dup]) + "\n")
    res = loader.load_file(con, "exposure.v1", src)
    assert (res.rows_loaded, res.rows_quarantined) == (0, 4)
    got = rows(con, "select line_no, errors from raw.quarantine order by 1")
    errors = {n: json.loads(e) for n, e in got}
    assert [(e["path"], e["rule"]) for e in errors[1]] == [("$.items[0].rank", "representable")]
    # orjson reads an integer beyond 64 bits as a float: still beyond BIGINT.
    assert [(e["path"], e["rule"]) for e in errors[2]] == [("$.items[0].rank", "representable")]
    assert [(e["path"], e["rule"]) for e in errors[3]] == [("$.user_id", "representable")]
    assert "surrogate" in errors[3][0]["message"]
    # Repeated keys are refused, every one named (no "last value wins").
    assert [(e["path"], e["rule"], e["message"].split(":")[0]) for e in errors[4]] == [
        ("$", "duplicate_key", 'duplicate key "request_id"'),
        ("$.context", "duplicate_key", 'duplicate key "k"'),
        ("$.items[0]", "duplicate_key", 'duplicate key "rank"'),
    ]


def test_timestamp_duckdb_cannot_cast_goes_to_quarantine(con: Any, tmp_path: Path) -> None:
    # A schema copy without `format` lets a non-timestamp reach the warehouse: the loader's
    # safety net moves the row to the quarantine instead of storing a NULL ts.
    schema = json.loads((SCHEMAS / "exposure.v1.json").read_text())
    del schema["properties"]["ts"]["format"]
    schema_path = tmp_path / "exposure.v1.json"
    schema_path.write_text(json.dumps(schema))
    src = tmp_path / "e.jsonl"
    src.write_bytes(jl(exposure(1), exposure(2, ts="yesterday"), exposure(3)))
    res = loader.load_file(con, str(schema_path), src)
    assert (res.rows_loaded, res.rows_quarantined) == (2, 1)
    assert rows(con, "select line_no from raw.exposures order by 1") == [(1,), (3,)]
    q = rows(con, "select line_no, raw_text, errors from raw.quarantine")
    assert q == [
        (
            2,
            json.dumps(exposure(2, ts="yesterday")),
            json.dumps(
                [
                    {
                        "path": "$.ts",
                        "rule": "representable",
                        "message": "timestamp 'yesterday' cannot be represented as a warehouse (DuckDB) timestamp",
                    }
                ],
                separators=(",", ":"),
            ),
        )
    ]
    assert rows(con, "select rows_loaded, rows_quarantined from raw.load_ledger") == [(2, 1)]


def test_other_schemas_and_tables(con: Any, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text(
        '{"request_id":"r1","user_id":"u1","item_id":"i1","event_type":"click",'
        '"value":1,"ts":"2025-01-01T00:00:10+01:00"}\n'
    )
    asg = tmp_path / "a.jsonl"
    asg.write_text(
        '{"experiment_id":"e","variant":"A","request_id":"r1","user_id":"u1",'
        '"ts":"2025-01-01T00:00:00Z","context":{"country":"FI"}}\n'
    )
    rl = tmp_path / "r.jsonl"
    rl.write_text(
        '{"request_id":"r1","user_id":"u1","ts":"2025-01-01T00:00:00Z","items":["i3","i1","i2"]}\n'
    )
    inter = tmp_path / "i.jsonl"
    inter.write_text(
        '{"schema_version":"interaction.v1","occurred_at":"2025-01-01T00:00:00Z",'
        '"tenant_id":"t","event_type":"view","item_id":"i1"}\n'
    )
    assert loader.load_file(con, "outcome.v1", out).table == "outcomes"
    assert loader.load_file(con, "assignment.v1", asg).table == "assignments"
    assert loader.load_file(con, "ranklist.v1", rl, table="ranker_a").table == "ranker_a"
    assert loader.load_file(con, "interaction.v1", inter).table == "interaction_v1"
    assert rows(con, "select item_id, event_type, value, ts from raw.outcomes") == [
        ("i1", "click", 1.0, datetime(2024, 12, 31, 23, 0, 10))
    ]
    assert rows(con, "select variant, context from raw.assignments") == [("A", {"country": "FI"})]
    assert rows(con, "select items, context from raw.ranker_a") == [(["i3", "i1", "i2"], None)]
    payload = rows(con, "select line_no, payload from raw.interaction_v1")
    assert payload[0][0] == 1
    assert json.loads(payload[0][1])["tenant_id"] == "t"


def test_bad_table_names(con: Any, tmp_path: Path) -> None:
    src = tmp_path / "o.jsonl"
    src.write_text("")
    for name in ["Exposures", "1x", "a-b", "x" * 64, "raw.x", "x;drop"]:
        with pytest.raises(RecsysEvalError, match="invalid table name"):
            loader.load_file(con, "outcome.v1", src, table=name)
    with pytest.raises(RecsysEvalError, match="reserved"):
        loader.load_file(con, "outcome.v1", src, table="quarantine")
    with pytest.raises(RecsysEvalError, match=r"table raw.exposures has columns"):
        loader.load_file(con, "outcome.v1", src, table="exposures")


def test_default_table_names() -> None:
    assert [
        loader.default_table(n)
        for n in [
            "exposure.v1",
            "outcome.v1",
            "assignment.v1",
            "ranklist.v1",
            "serving_exposure.v1",
            "my-thing.v2",
        ]
    ] == ["exposures", "outcomes", "assignments", "ranklists", "serving_exposure_v1", "my_thing_v2"]


def test_locked_database(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
            "time.sleep(30)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(DatabaseLockedError) as info:
            warehouse.connect(db)
        assert str(info.value) == f"database {db} is locked by another run (pid {holder.pid})"
    finally:
        holder.kill()
        holder.wait()
    warehouse.connect(db).close()


def test_connect_turns_off_progress_bar(tmp_path: Path) -> None:
    c = warehouse.connect(tmp_path / "x.duckdb")
    try:
        assert rows(c, "select current_setting('enable_progress_bar')") == [(False,)]
    finally:
        c.close()


def test_load_by_path_opens_and_closes(tmp_path: Path) -> None:
    src = tmp_path / "o.jsonl"
    src.write_text(
        '{"request_id":"r1","user_id":"u1","item_id":"i1","event_type":"click",'
        '"ts":"2025-01-01T00:00:10Z"}\n'
    )
    res = loader.load_file(tmp_path / "wh.duckdb", "outcome.v1", src)
    assert res.rows_loaded == 1
    c = duckdb.connect(str(tmp_path / "wh.duckdb"))
    assert rows(c, "select count(*) from raw.outcomes") == [(1,)]
    c.close()


def test_load_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "wh.duckdb")
    src = tmp_path / "e.jsonl"
    src.write_bytes(jl(exposure(1), b"oops", b""))
    args = ["load", "--schema", "exposure.v1", "--input", str(src), "--database", db]
    assert main(args) == 0
    err = capsys.readouterr().err.splitlines()
    c = duckdb.connect(db, read_only=True)
    load_id = rows(c, "select load_id from raw.load_ledger")[0][0]
    c.close()
    assert err[0].startswith(
        f"{src} -> raw.exposures: 3 lines read, 1 loaded, 1 quarantined, 1 blank, "
    )
    assert err[0].endswith(" lines/s")
    assert err[1] == (
        "  1 invalid line(s) quarantined; see them with: "
        f"select * from raw.quarantine where load_id = '{load_id}'"
    )
    assert main(args) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"{src}: already loaded (load_id {load_id}, sha256 ")
    assert err[0].endswith("): nothing new")
    missing = str(tmp_path / "nope.jsonl")
    assert main(["load", "--schema", "exposure.v1", "--input", missing, "--database", db]) == 1
    assert capsys.readouterr().err == f"error: input file not found: {missing}\n"


def test_progress_display_is_rate_limited(
    con: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "e.jsonl"
    src.write_bytes(jl(*[exposure(i) for i in range(50)]))
    clock = iter(range(0, 10_000))
    monkeypatch.setattr(loader.time, "monotonic", lambda: float(next(clock)))
    loader.load_file(con, "exposure.v1", src, progress=True, workers=0, chunk_bytes=2048)
    err = capsys.readouterr().err
    assert "loading e.jsonl:" in err
    assert "lines/s" in err
    assert err.endswith("\r\033[K")
    time.sleep(0)
