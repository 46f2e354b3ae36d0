"""Clear one-line failures for a lost database race, a full TMPDIR and unwritable destinations
(issue 16, item 11).

- Two runs on the same `--database`: the one whose dbt build cannot lock the file says
  `database ... is locked by another run (pid N)`, like the loader, instead of dbt's traceback.
- A full TMPDIR (dbt's logs and the temporary run database live there) says "No space left on
  device", with the folders and their free space.
- Every destination (report, decision file, offline.history_dir) is checked before any work: a
  read-only history folder no longer raises an uncaught OSError after the report was written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import CONFIGS, ROOT

from recsys_eval import dbt_runner, tempdirs
from recsys_eval.cli import main
from recsys_eval.commands import run as run_cmd
from recsys_eval.errors import EXIT_ERROR, DatabaseLockedError, RecsysEvalError

TINY_DATASET = CONFIGS / "dataset.tiny.yaml"
# The end of dbt's output when dbt-duckdb cannot lock the database (recorded from dbt 1.9).
DBT_LOCK_OUTPUT = """\
  File "/venv/lib/python3.11/site-packages/dbt/adapters/duckdb/environments/__init__.py", line 164, in initialize_db
    conn = duckdb.connect(creds.path, read_only=False, config=config)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
_duckdb.IOException: IO Error: Could not set lock on file "{db}": Conflicting lock is held in /usr/bin/python3.11 (PID 6090). See also https://duckdb.org/docs/current/connect/concurrency
"""
# ... and when its log file is on a full disk.
DBT_ENOSPC_OUTPUT = """\
  File "/venv/lib/python3.11/site-packages/dbt_common/events/logger.py", line 65, in send_to_logger
    logger.debug(log_line)
OSError: [Errno 28] No space left on device
Message: '04:47:26.293152 [debug] [MainThread]: Flushing usage events'
"""


def fake_dbt(monkeypatch: pytest.MonkeyPatch, stderr: str) -> None:
    def run(cmd: list[str], **_kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 2, stdout="", stderr="x" * 5000 + stderr)

    monkeypatch.setattr(dbt_runner.subprocess, "run", run)


def test_dbt_losing_the_lock_says_locked_by_another_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "run.duckdb"
    fake_dbt(monkeypatch, DBT_LOCK_OUTPUT.format(db=db))
    with pytest.raises(DatabaseLockedError) as info:
        dbt_runner.build(db, {}, ["x"], tmp_path, parse_cache=False)
    assert str(info.value) == f"database {db} is locked by another run (pid 6090)"


def test_dbt_on_a_full_disk_says_no_space_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "recsys-eval-run-x"
    work.mkdir()
    db = tmp_path / "db" / "run.duckdb"
    db.parent.mkdir()
    fake_dbt(monkeypatch, DBT_ENOSPC_OUTPUT)
    with pytest.raises(RecsysEvalError) as info:
        dbt_runner.build(db, {}, ["x"], work, parse_cache=False)
    message = str(info.value)
    assert message.startswith(
        f"dbt build failed: No space left on device (temp folder {tmp_path}: "
    )
    assert f"; database folder {db.parent}: " in message
    assert message.endswith(
        "; free space, or point TMPDIR (temporary files) or --database (the run database) at a "
        "disk with room"
    )
    assert "\n" not in message and "Traceback" not in message and "File " not in message


def test_other_dbt_failures_keep_their_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dbt(monkeypatch, "Compilation Error in model x: something else")
    with pytest.raises(RecsysEvalError) as info:
        dbt_runner.build(tmp_path / "db.duckdb", {}, ["x"], tmp_path, parse_cache=False)
    assert str(info.value).endswith("Compilation Error in model x: something else")
    assert len(str(info.value)) == len("dbt build failed: ") + 2000


@contextmanager
def holding(db: Path) -> Iterator[subprocess.Popen[str]]:
    """The other run: a process that holds the DuckDB file open."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ok', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ok"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_the_run_that_loses_the_database_to_another_between_load_and_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The race of two runs on one --database: this run has loaded and closed the file, the
    other opens it before this run's dbt does (a real dbt start: ~10 s idle, 36 s on a busy
    2-core machine)."""
    monkeypatch.chdir(ROOT)
    db = tmp_path / "shared.duckdb"
    out = tmp_path / "report.json"
    real_load = run_cmd.load_sources
    pids: list[int] = []
    with ExitStack() as stack:

        def load_then_lose(cfg: Any, database: Path, *args: Any) -> Any:
            loads = real_load(cfg, database, *args)
            pids.append(stack.enter_context(holding(database)).pid)
            return loads

        monkeypatch.setattr(run_cmd, "load_sources", load_then_lose)
        code = main(["run", "--dataset", str(TINY_DATASET), "--config",
                     str(CONFIGS / "offline.ci.yaml"), "--output", str(out),
                     "--database", str(db), "--quiet"])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err == (
        f"error: database {db} is locked by another run (pid {pids[0]})\n"
    )
    assert not out.exists()


@contextmanager
def tmpfs(tmp_path: Path, options: str) -> Iterator[Path]:
    """A real tmpfs (root only); skips cleanly where mounting is not permitted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
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


def test_a_run_with_a_full_tmpdir_says_no_space_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """TMPDIR is a full tmpfs: the run stops at once with one line naming the folder. (dbt
    running out of space later in the run is the recorded-output test above; by hand, a 1 MiB
    tmpfs gave `dbt build failed: No space left on device (temp folder ...: 0 MiB free); ...`.)"""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "report.json"
    with tmpfs(tmp_path, "size=64k") as mount:
        filler = mount / "filler"
        with filler.open("wb") as fh, contextlib.suppress(OSError):
            fh.write(b"x" * (128 << 10))
        monkeypatch.setattr(tempfile, "tempdir", str(mount))
        code = main(["run", "--dataset", str(TINY_DATASET), "--config",
                     str(CONFIGS / "offline.ci.yaml"), "--output", str(out)])  # fmt: skip
        assert code == EXIT_ERROR
        assert capsys.readouterr().err == (
            f"error: cannot create a temporary folder in {mount}: No space left on device; free "
            "space there or point TMPDIR at a writable disk with room\n"
        )
        assert list(mount.iterdir()) == [filler]
    assert not out.exists()


@contextmanager
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write to: a read-only tmpfs as root (root ignores modes), else 0555."""
    if os.geteuid() == 0:
        with tmpfs(tmp_path, "ro,size=64k") as mount:
            yield mount
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the run started its work before refusing a destination")

    monkeypatch.setattr(tempdirs, "create", forbidden)
    monkeypatch.setattr(run_cmd, "load_sources", forbidden)


def offline_config(tmp_path: Path, history: Path) -> Path:
    config = tmp_path / "offline.yaml"
    config.write_text(
        (CONFIGS / "offline.ci.yaml")
        .read_text()
        .replace("offline:\n", f"offline:\n  history_dir: {json.dumps(str(history))}\n", 1)
    )
    return config


@pytest.mark.parametrize("missing", [False, True], ids=["existing", "to-be-created"])
def test_a_read_only_history_dir_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, no_work, missing: bool
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "report.json"
    with read_only_folder(tmp_path) as ro:
        history = ro / "history" if missing else ro
        config = offline_config(tmp_path, history)
        code = main(["run", "--dataset", str(TINY_DATASET), "--config", str(config),
                     "--output", str(out)])  # fmt: skip
        assert code == EXIT_ERROR
        assert capsys.readouterr().err == (
            f"error: offline.history_dir {history}: folder {ro} is not writable; fix its "
            f"permissions or history_dir in {config}\n"
        )
    assert not out.exists()


def test_a_history_dir_that_is_a_file_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, no_work
) -> None:
    monkeypatch.chdir(ROOT)
    history = tmp_path / "history"
    history.write_text("a file\n")
    config = offline_config(tmp_path, history / "sub")
    code = main(["run", "--dataset", str(TINY_DATASET), "--config", str(config),
                 "--output", str(tmp_path / "report.json")])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err == (
        f"error: offline.history_dir {history / 'sub'}: {history} is not a folder; fix "
        f"history_dir in {config}\n"
    )


def test_a_decision_file_in_a_missing_folder_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, no_work
) -> None:
    monkeypatch.chdir(ROOT)
    target = tmp_path / "no-such-folder" / "decision.json"
    config = tmp_path / "experiment.yaml"
    config.write_text(
        (CONFIGS / "experiment.demo.yaml").read_text().replace(
            "decision: {enabled: true, policy: playbook}",
            f"decision: {{enabled: true, policy: playbook, output_path: {json.dumps(str(target))}}}",
        )
    )  # fmt: skip
    code = main(["run", "--dataset", str(TINY_DATASET), "--config", str(config),
                 "--output", str(tmp_path / "report.json")])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err == (
        f"error: cannot write {target}: folder {target.parent} does not exist\n"
    )
