"""loader: the ledger describes exactly the bytes loaded; a grown log loads only its new lines.

A load reads the file's size once and loads that prefix up to its last complete line (the
unterminated last line only when the file did not grow); the ledger row holds the size and
SHA-256 of exactly those bytes. Loading the same path again after an append loads the new
complete lines only, numbered on; a path whose loaded bytes changed is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from recsys_eval import loader, warehouse
from recsys_eval.commands.load import _summary
from recsys_eval.commands.run import HELD_LOADS_SQL
from recsys_eval.errors import RecsysEvalError


def outcome(i: int) -> bytes:
    doc = {
        "request_id": f"r{i}",
        "user_id": "u1",
        "item_id": f"i{i}",
        "event_type": "click",
        "value": 1.0,
        "ts": "2025-01-01T00:00:00Z",
    }
    return json.dumps(doc).encode()


def lines(first: int, last: int) -> bytes:
    return b"".join(outcome(i) + b"\n" for i in range(first, last + 1))


@pytest.fixture
def con(tmp_path: Path) -> Any:
    c = warehouse.connect(tmp_path / "wh.duckdb")
    loader.ensure_raw_schema(c)
    yield c
    c.close()


def line_numbers(con: Any) -> list[int]:
    """Every line_no of raw.outcomes and raw.quarantine (one per physical line loaded)."""
    got = con.execute(
        "select line_no from raw.outcomes union all select line_no from raw.quarantine"
    ).fetchall()
    return sorted(r[0] for r in got)


def ledger(con: Any) -> list[tuple[Any, ...]]:
    return con.execute(
        "select load_id, file_size, file_sha256, start_byte, bytes_loaded, first_line_no, "
        "lines_read, appends_to from raw.load_ledger order by load_seq"
    ).fetchall()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_file_growing_during_the_load_then_loaded_complete(
    con: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "outcomes.jsonl"
    partial = outcome(11)[:20]  # a writer is in the middle of line 11
    src.write_bytes(lines(1, 10) + partial)
    loaded_prefix = lines(1, 10)
    real = loader._process_chunk
    grown: list[bool] = []

    def chunk_then_append(task: Any) -> Any:
        if not grown:  # after the size snapshot: line 11 is finished, 12-15 are appended
            grown.append(True)
            with src.open("ab") as fh:
                fh.write(outcome(11)[20:] + b"\n" + lines(12, 15))
        return real(task)

    monkeypatch.setattr(loader, "_process_chunk", chunk_then_append)
    first = loader.load_file(con, "outcome.v1", src, workers=0, chunk_bytes=300)
    monkeypatch.undo()
    assert grown == [True]
    # Exactly the complete lines present at the start: the unfinished line 11 is left out.
    assert (first.lines_read, first.rows_loaded, first.rows_quarantined) == (10, 10, 0)
    assert first.file_sha256 == sha(loaded_prefix)
    assert ledger(con) == [
        (first.load_id, len(loaded_prefix), sha(loaded_prefix), 0, len(loaded_prefix), 1, 10, None)
    ]
    assert "load it again to add the rest" in _summary(first)

    second = loader.load_file(con, "outcome.v1", src, workers=0, chunk_bytes=300)
    whole = src.read_bytes()
    assert (second.lines_read, second.rows_loaded, second.first_line_no) == (5, 5, 11)
    assert (second.appends_to, second.start_byte, second.end_byte) == (
        first.load_id,
        len(loaded_prefix),
        len(whole),
    )
    assert ledger(con)[1] == (
        second.load_id,
        len(whole),
        sha(whole),
        len(loaded_prefix),
        len(whole) - len(loaded_prefix),
        11,
        5,
        first.load_id,
    )
    summary = _summary(second)
    assert (
        f"appended: loaded lines 11-15; the first {len(loaded_prefix):,} bytes were loaded by "
        f"load {first.load_id}"
    ) in summary
    # Every line exactly once, numbered as in the whole file (request r<i> is on line i).
    assert line_numbers(con) == list(range(1, 16))
    got = con.execute("select line_no, request_id from raw.outcomes").fetchall()
    assert all(request == f"r{no}" for no, request in got)
    # The appended rows come after the first load's in file order (load_seq, line_no).
    seqs = con.execute(
        "select load_seq, min(line_no), max(line_no) from raw.outcomes group by 1 order by 1"
    ).fetchall()
    assert seqs == [(first.load_seq, 1, 10), (second.load_seq, 11, 15)]
    # The same file once more: nothing new, and `run`'s check sees one load of it.
    third = loader.load_file(con, "outcome.v1", src, workers=0)
    assert (third.skipped_duplicate, third.load_id) == (True, second.load_id)
    assert set(con.execute(HELD_LOADS_SQL).fetchall()) == {("outcomes", sha(whole))}
    assert line_numbers(con) == list(range(1, 16))


def test_append_in_worker_processes_numbers_lines_on(con: Any, tmp_path: Path) -> None:
    src = tmp_path / "outcomes.jsonl"
    src.write_bytes(lines(1, 40))
    first = loader.load_file(con, "outcome.v1", src, workers=2, chunk_bytes=500)
    with src.open("ab") as fh:
        fh.write(lines(41, 100) + b"{broken\n")
    second = loader.load_file(con, "outcome.v1", src, workers=2, chunk_bytes=500)
    assert (second.first_line_no, second.rows_loaded, second.rows_quarantined) == (41, 60, 1)
    assert second.appends_to == first.load_id
    assert line_numbers(con) == list(range(1, 102))
    assert con.execute("select line_no from raw.quarantine").fetchall() == [(101,)]


def test_changed_prefix_is_refused(con: Any, tmp_path: Path) -> None:
    src = tmp_path / "outcomes.jsonl"
    src.write_bytes(lines(1, 5))
    first = loader.load_file(con, "outcome.v1", src)
    size = src.stat().st_size
    src.write_bytes(outcome(9) + b"\n" + lines(2, 8))  # line 1 rewritten, lines appended
    before = ledger(con)
    with pytest.raises(RecsysEvalError) as info:
        loader.load_file(con, "outcome.v1", src)
    message = str(info.value)
    assert f"the first {size:,} bytes of {src.resolve()} differ" in message
    assert f"load {first.load_id}" in message
    assert "fresh --database" in message and "another name" in message
    assert ledger(con) == before
    assert line_numbers(con) == [1, 2, 3, 4, 5]
    # A file now shorter than what was loaded is refused too.
    src.write_bytes(lines(1, 2))
    with pytest.raises(RecsysEvalError, match=f"shorter than the {size:,} bytes load"):
        loader.load_file(con, "outcome.v1", src)


def test_unterminated_last_line_then_appended(con: Any, tmp_path: Path) -> None:
    src = tmp_path / "outcomes.jsonl"
    src.write_bytes(lines(1, 2) + outcome(3))  # the last line has no newline
    first = loader.load_file(con, "outcome.v1", src)
    assert (first.lines_read, first.rows_loaded, first.end_byte) == (3, 3, src.stat().st_size)
    with src.open("ab") as fh:  # the writer ends line 3, then appends line 4
        fh.write(b"\n" + lines(4, 4))
    second = loader.load_file(con, "outcome.v1", src)
    assert (second.first_line_no, second.lines_read, second.rows_loaded) == (4, 1, 1)
    assert line_numbers(con) == [1, 2, 3, 4]
    # A last line that was loaded without its newline and then continued is refused.
    other = tmp_path / "other.jsonl"
    other.write_bytes(lines(1, 1) + outcome(2)[:-1] + b', "value": 2.0}')
    loader.load_file(con, "outcome.v1", other)
    with other.open("ab") as fh:
        fh.write(b"x\n")
    with pytest.raises(RecsysEvalError, match="loaded its line 2 without a newline"):
        loader.load_file(con, "outcome.v1", other)


def test_database_of_the_previous_version_keeps_working(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    src = tmp_path / "outcomes.jsonl"
    src.write_bytes(lines(1, 3))
    old = warehouse.connect(db)
    old.execute("create schema raw")
    old.execute(loader.LEDGER_DDL)
    old.execute(loader.QUARANTINE_DDL)
    old.execute(
        "insert into raw.load_ledger values (1, 'load-old', 'outcome.v1', 'outcomes', ?, ?, ?, "
        "3, 3, 0, 0, now(), now())",
        [str(src.resolve()), sha(src.read_bytes()), src.stat().st_size],
    )
    old.close()
    with src.open("ab") as fh:
        fh.write(lines(4, 5))
    res = loader.load_file(db, "outcome.v1", src)
    assert (res.appends_to, res.first_line_no, res.rows_loaded) == ("load-old", 4, 2)
