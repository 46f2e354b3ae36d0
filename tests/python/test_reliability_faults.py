"""Faults (issue 8, item 2): killed loads, a locked database, a full disk, unwritable outputs.

- A `recsys-eval load` killed with SIGKILL at random points leaves the database exactly as it was
  before that load (the load is one transaction; DuckDB replays or drops its WAL on reopen).
- A second run on a database another process holds stops with "database ... is locked by another
  run (pid N)" and writes nothing.
- A full disk (a 64 KiB tmpfs when running as root, else a simulated ENOSPC) or an unwritable
  output fails with a clear message, leaves no temp file and keeps the previous report intact.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from conftest import CONFIGS, ROOT

from recsys_eval import loader, report
from recsys_eval.cli import main
from recsys_eval.errors import EXIT_ERROR, RecsysEvalError

VALID = {
    "request_id": "r1",
    "user_id": "u1",
    "ts": "2024-03-01T12:00:00Z",
    "items": [{"item_id": "i1", "rank": 1}],
}


def snapshot(db: Path) -> dict[str, tuple[int, int]]:
    """Every table of the database: (row count, order-free hash of all rows)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "order by table_schema, table_name"
        ).fetchall()
        out = {}
        for schema, table in tables:
            count, digest = con.execute(
                f'select count(*), coalesce(sum(hash(t::varchar)), 0) from "{schema}"."{table}" t'
            ).fetchone()
            out[f"{schema}.{table}"] = (int(count), int(digest))
        return out
    finally:
        con.close()


def generate_exposures(path: Path, n: int) -> None:
    """n exposure lines (every 500th invalid) with DuckDB's JSON writer."""
    con = duckdb.connect()
    try:
        con.execute(
            f"""
            copy (
                select
                    'req-' || i as request_id,
                    case when i % 500 = 7 then null else 'user-' || (i % 1009) end as user_id,
                    strftime(timestamp '2025-01-01' + to_seconds(i % 86400),
                        '%Y-%m-%dT%H:%M:%SZ') as ts,
                    list_transform(range(8), lambda k: {{'item_id': 'item-' || (i + k) % 997,
                        'rank': k + 1}}) as items,
                    map {{'tenant': 't' || (i % 3)}} as context
                from range({n}) t(i)
            ) to '{path}' (format json)
            """
        )
    finally:
        con.close()


@pytest.mark.slow
def test_a_load_killed_at_random_points_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    """All or nothing: a SIGKILL at any point leaves the database as before the load, or (when the
    kill lands after the commit) with the whole load in it; never a part of it."""
    base = tmp_path / "base.duckdb"
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(json.dumps({**VALID, "request_id": f"a{i}"}) for i in range(50)))
    loader.load_file(base, "exposure.v1", first)
    before = snapshot(base)

    big = tmp_path / "big.jsonl"
    generate_exposures(big, 160_000)  # ~30 MB: validated by the two worker processes
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    # The whole load once, timed: the kills below land inside that span.
    full = tmp_path / "full.duckdb"
    shutil.copy(base, full)
    t0 = time.monotonic()
    res = loader.load_file(full, "exposure.v1", big)
    span = time.monotonic() - t0
    assert (res.lines_read, res.rows_loaded, res.rows_quarantined) == (160_000, 159_680, 320)
    complete = {name: rows for name, (rows, _) in snapshot(full).items()}
    t0 = time.monotonic()  # the child's own start-up (imports) comes before its load
    subprocess.run([sys.executable, "-c", "import recsys_eval.cli"], env=env, check=True)
    startup = time.monotonic() - t0

    rng = random.Random(20261123)
    rolled_back = 0
    for attempt in range(6):
        db = tmp_path / f"attempt{attempt}.duckdb"
        shutil.copy(base, db)
        cmd = [sys.executable, "-m", "recsys_eval.cli", "load", "--schema", "exposure.v1"]
        cmd += ["--input", str(big), "--database", str(db), "--no-progress"]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        time.sleep(startup + rng.uniform(0.1, 0.9) * span)
        was_running = proc.poll() is None
        if was_running:
            os.kill(proc.pid, signal.SIGKILL)  # the loader only: its workers see EOF and exit
        proc.wait(timeout=120)
        with pytest.raises(ProcessLookupError):  # no worker outlives the load
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)
                time.sleep(0.1)
            os.killpg(proc.pid, signal.SIGKILL)
        state = snapshot(db)
        if state == before:
            assert proc.returncode == -signal.SIGKILL
            rolled_back += 1
        else:  # the kill came after the commit (or never came): then the load is all there
            counts = {name: rows for name, (rows, _) in state.items()}
            assert counts == complete, f"attempt {attempt}: the killed load left a partial load"
    assert rolled_back >= 3, f"only {rolled_back} of 6 kills landed before the commit"

    # A rolled-back database takes the same load again, and every count adds up.
    db = tmp_path / "attempt0.duckdb"
    if snapshot(db) == before:
        res = loader.load_file(db, "exposure.v1", big)
        assert (res.lines_read, res.rows_loaded, res.rows_quarantined) == (160_000, 159_680, 320)
        after = snapshot(db)
        assert after["raw.exposures"][0] == 50 + 159_680
        assert after["raw.load_ledger"][0] == 2


@contextmanager
def holding(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the DuckDB file open (as a running `run` does)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
            "time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ok"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_run_on_a_locked_database_says_so_and_writes_nothing(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(ROOT)
    db = tmp_path / "run.duckdb"
    out = tmp_path / "report.json"
    args = ["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml")]
    args += ["--config", str(CONFIGS / "offline.ci.yaml"), "--output", str(out)]
    with holding(db) as holder:
        code = main([*args, "--database", str(db)])
        err = capsys.readouterr().err
        assert code == EXIT_ERROR
        assert f"database {db} is locked by another run (pid {holder.pid})" in err
        assert not out.exists()
        # `load` says the same.
        code = main(["load", "--schema", "exposure.v1", "--database", str(db), "--input",
                     str(ROOT / "examples/tiny/exposures.jsonl")])  # fmt: skip
        assert code == EXIT_ERROR
        assert "is locked by another run" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [db]


@contextmanager
def tiny_tmpfs(tmp_path: Path, options: str) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the ENOSPC tests below simulate it instead")
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_on_a_real_tmpfs_leaves_no_half_written_report(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path, "size=64k") as mount:
        target = mount / "report.json"
        report.write_atomic(target, "previous report\n")
        with pytest.raises(RecsysEvalError) as info:
            report.write_atomic(target, "x" * (256 << 10))
        assert str(info.value) == f"cannot write {target}: No space left on device"
        assert target.read_text() == "previous report\n"
        assert sorted(p.name for p in mount.iterdir()) == ["report.json"]


def test_full_disk_during_a_load_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    """The loader's spill files go to a full tmpfs: the load fails whole, the database is as
    before."""
    db = tmp_path / "w.duckdb"
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps(VALID) + "\n")
    loader.load_file(db, "exposure.v1", small)
    before = snapshot(db)
    big = tmp_path / "big.jsonl"
    generate_exposures(big, 3_000)
    with tiny_tmpfs(tmp_path, "size=64k") as mount:
        monkeypatch.setattr(tempfile, "tempdir", str(mount))
        with pytest.raises(RecsysEvalError) as info:
            loader.load_file(db, "exposure.v1", big, workers=0)
        assert str(info.value) == (
            f"loading {big.resolve()} failed, nothing was written: No space left on device"
        )
        assert list(mount.iterdir()) == []
    assert snapshot(db) == before


def test_simulated_enospc_while_writing_a_report(tmp_path: Path, monkeypatch) -> None:
    """Without root: ENOSPC from fsync (where a full disk shows up for buffered writes)."""
    target = tmp_path / "report.json"
    target.write_text("previous report\n")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RecsysEvalError) as info:
        report.write_atomic(target, '{"new": true}\n')
    assert str(info.value) == f"cannot write {target.resolve()}: No space left on device"
    assert target.read_text() == "previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_dev_full_and_other_non_files_are_never_replaced(tmp_path: Path) -> None:
    for target in (Path("/dev/full"), Path("/dev/null"), tmp_path):
        with pytest.raises(RecsysEvalError, match="exists and is not a regular file"):
            report.write_atomic(target, "x\n")
    assert Path("/dev/full").is_char_device() and Path("/dev/null").is_char_device()
    assert not [p for p in Path("/dev").iterdir() if p.name.startswith((".full.", ".null."))]


def test_run_into_a_read_only_folder_fails_before_any_work(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(ROOT)
    with tiny_tmpfs(tmp_path, "ro,size=64k") as mount:
        out = mount / "report.json"
        code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                     str(CONFIGS / "offline.ci.yaml"), "--output", str(out)])  # fmt: skip
        assert code == EXIT_ERROR
        assert capsys.readouterr().err == (
            f"error: cannot write {out}: folder {mount} is not writable\n"
        )
        assert list(mount.iterdir()) == []


def test_run_to_dev_full_is_refused_before_any_work(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(CONFIGS / "offline.ci.yaml"), "--output", "/dev/full"])  # fmt: skip
    assert code == EXIT_ERROR
    assert "error: cannot write /dev/full: it exists and is not a regular file" in (
        capsys.readouterr().err
    )
    assert Path("/dev/full").is_char_device()


def test_full_disk_at_the_end_of_a_run_leaves_no_report(tmp_path: Path, monkeypatch, capsys):
    """The whole run works, then the report write hits ENOSPC: exit 1, a clear message, no
    report and no temp file."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out" / "report.json"
    out.parent.mkdir()
    real_fsync = os.fsync

    def full_for_reports(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).parent == out.parent:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_for_reports)
    code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(CONFIGS / "offline.ci.yaml"), "--output", str(out), "--quiet"])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err == (
        f"error: cannot write {out.resolve()}: No space left on device\n"
    )
    assert list(out.parent.iterdir()) == []
