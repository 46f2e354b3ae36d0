"""The fast path's shortcuts for Parquet (recsys_eval.tabular_fast): line_no from the position when
each file's rows are already in the documented order (no join), the records left out of the insert
found by their lines (BADLINES) and only those read again, item rows numbered from a narrow
aggregation and inserted joined by request_id. Each case is checked against the validator's path
(PII guard in flag mode: every record through the documented ORDER BY query and the JSON Schema),
which must store the same rows, line numbers and quarantine, and against hand-derived orders."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from recsys_eval import tabular_fast
from recsys_eval.config import Source
from recsys_eval.loader import ensure_raw_schema
from recsys_eval.tabular_sources import load_tabular_source, plan_source

ITEM = "{{'item_id': '{}', 'rank': {}}}"


def _source(**options) -> Source:
    return Source("exposures", "parquet", None, None, None, options=dict(type="parquet", **options))


def _write(path: Path, rows: list[tuple]) -> None:
    """rows: (request_id, user_id, ts offset in minutes or None, items SQL)."""
    values = ", ".join(
        f"({'null' if r is None else repr(r)}, {'null' if u is None else repr(u)}, "
        f"{'null' if m is None else f'timestamp {chr(39)}2025-01-01{chr(39)} + to_minutes({m})'}, "
        f"{items})"
        for r, u, m, items in rows
    )
    duckdb.execute(
        f"copy (select * from (values {values}) v(request_id, user_id, ts, items)) to '{path}'"
    )


def _both_paths(tmp: Path, src: Source) -> tuple[tuple[list, list], tuple[list, list]]:
    out = []
    for guard in ("off", "flag"):
        con = duckdb.connect(str(tmp / f"{guard}-{len(list(tmp.iterdir()))}.duckdb"))
        ensure_raw_schema(con)
        result = load_tabular_source(con, "exposure.v1", src, "exposures", guard, tmp)
        rows = con.execute(
            "select line_no, request_id, user_id, ts, items from raw.exposures order by line_no"
        ).fetchall()
        bad = con.execute(
            "select line_no, raw_text, errors from raw.quarantine order by line_no"
        ).fetchall()
        assert result.rows_loaded + result.rows_quarantined == result.lines_read
        out.append((rows, bad))
    return out[0], out[1]


def _uses_positions(tmp: Path, src: Source) -> bool:
    plan = plan_source(src, "exposure.v1", tmp)
    assert plan.stage is not None
    con = duckdb.connect()
    con.execute(plan.stage.prepare[0], plan.params)
    return tabular_fast._positional(con, plan.stage, plan.params) is not None


def test_files_in_order_take_their_lines_from_the_position(tmp_path):
    """Two files, each in time order, the later file first in name order; bad rows in both: the
    lines follow ts across the files (b's rows first), the bad rows keep their lines."""
    _write(tmp_path / "part-a.parquet", [
        ("a1", "u", 10, f"[{ITEM.format('x', 1)}]"),
        ("a2", None, 11, f"[{ITEM.format('x', 1)}]"),  # required user_id missing
        ("a3", "u", 12, f"[{ITEM.format('x', 0)}]"),  # rank 0
    ])  # fmt: skip
    _write(tmp_path / "part-b.parquet", [
        ("b1", "u", 1, f"[{ITEM.format('x', 1)}]"),
        ("b2", "u", 2, f"[{ITEM.format('', 1)}]"),  # empty item_id
        ("b3", "u", 3, f"[{ITEM.format('y', 2)}, {ITEM.format('x', 1)}]"),
    ])  # fmt: skip
    src = _source(path="part-*.parquet")
    assert _uses_positions(tmp_path, src)
    fast, validator = _both_paths(tmp_path, src)
    assert fast == validator
    assert [(n, r) for n, r, *_ in fast[0]] == [(1, "b1"), (3, "b3"), (4, "a1")]
    assert [n for n, *_ in fast[1]] == [2, 5, 6]


@pytest.mark.parametrize("minutes", [[3, 1, 2, 5, 4], [1, 1, None, 2, 2]])
def test_rows_out_of_order_are_joined_to_their_lines(tmp_path, minutes):
    """Out of ts order (or NULL ts, which sorts last) within a file: line_no comes from ORDER."""
    rows = [(f"r{i}", "u" if i != 3 else "", m, f"[{ITEM.format('x', 1)}]")
            for i, m in enumerate(minutes)]  # fmt: skip
    _write(tmp_path / "e.parquet", rows)
    src = _source(path="e.parquet")
    assert not _uses_positions(tmp_path, src)
    fast, validator = _both_paths(tmp_path, src)
    assert fast == validator
    # hand-derived: ts ascending, NULLs last, ties by position; r3 (empty user_id) and a NULL
    # ts (required) quarantined
    expected = sorted(range(len(minutes)), key=lambda i: (minutes[i] is None, minutes[i] or 0, i))
    lines = {f"r{i}": n + 1 for n, i in enumerate(expected)}
    bad = {"r3"} | {f"r{i}" for i, m in enumerate(minutes) if m is None}
    assert [(n, r) for n, r, *_ in fast[0]] == sorted((lines[r], r) for r in lines if r not in bad)
    assert [n for n, *_ in fast[1]] == sorted(lines[r] for r in bad)


@pytest.mark.parametrize("typ", ["parquet", "table"])
def test_item_rows_left_out_are_found_by_their_lines(tmp_path, typ):
    """Item rows over two files (or one DuckDB table holding both in that order), rows of a
    request split between them and out of rank order, a NULL request_id, a request whose first
    item (by rank) has another user_id, bad requests: the fast path (Parquet: numbered from a
    narrow aggregation, inserted joined by request_id; a table: staged) stores what the
    validator's path stores, in the same lines."""
    ts = "timestamp '2025-01-01' + to_minutes({})"
    duckdb.execute(
        "copy (select * from (values "
        f"('q2', 'u2', {ts.format(2)}, 'i2b', 2), ('q1', 'u1', {ts.format(5)}, 'i1a', 1), "
        f"(null, 'u0', {ts.format(1)}, 'n1', 1), ('q3', 'u3', {ts.format(3)}, 'i3a', 0), "
        f"('q4', 'late', {ts.format(4)}, 'i4b', 2)) v(request_id, user_id, ts, item_id, rank)) "
        f"to '{tmp_path / 'rows-1.parquet'}'"
    )
    duckdb.execute(
        "copy (select * from (values "
        f"('q2', 'u2', {ts.format(6)}, 'i2a', 1), ('q4', 'first', {ts.format(7)}, 'i4a', 1), "
        f"('q5', null, {ts.format(0)}, 'i5a', 1), (null, 'u0', {ts.format(8)}, 'n2', 2)) "
        f"v(request_id, user_id, ts, item_id, rank)) to '{tmp_path / 'rows-2.parquet'}'"
    )
    src = _source(path="rows-*.parquet", layout="item_rows")
    if typ == "table":
        db = tmp_path / "rows.duckdb"
        with duckdb.connect(str(db)) as con:
            con.execute(f"create table t as from read_parquet('{tmp_path / 'rows-1.parquet'}')")
            con.execute(f"insert into t from read_parquet('{tmp_path / 'rows-2.parquet'}')")
        src = Source("exposures", "table", None, str(db), None,
                     options={"type": "table", "dsn": str(db), "table": "t", "layout": "item_rows"})  # fmt: skip
    assert plan_source(src, "exposure.v1", tmp_path).stage is not None
    fast, validator = _both_paths(tmp_path, src)
    assert fast == validator
    # hand-derived: requests by their least ts, then request_id: q5 (0), NULL (1), q2 (2),
    # q3 (3), q4 (4), q1 (5); q5 (user_id NULL), the NULL request_id and q3 (rank 0) quarantined
    got = [(n, r, u, [i["item_id"] for i in items]) for n, r, u, _, items in fast[0]]
    assert got == [
        (3, "q2", "u2", ["i2a", "i2b"]),
        (5, "q4", "first", ["i4a", "i4b"]),
        (6, "q1", "u1", ["i1a"]),
    ]
    assert [n for n, *_ in fast[1]] == [1, 2, 4]
