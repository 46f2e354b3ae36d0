"""Temporary folders of `load` and `run` never pile up (issue 16, item 12).

- SIGTERM (or SIGHUP, or Ctrl-C) during a load or a run removes its temporary folder, rolls the
  load back and kills dbt's child process; the command exits 128 + the signal number.
- A folder left by a SIGKILLed process is swept when the next `load` or `run` starts; a live
  owner's folder, another user's folder and symbolic links are left alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CONFIGS, ROOT

from recsys_eval import tempdirs
from recsys_eval.cli import main

TINY = ROOT / "examples" / "tiny"
# A child that creates its folder the way run / load do, reports it and waits to be killed.
OWNER = (
    "import sys, time; from recsys_eval import tempdirs; "
    "print(tempdirs.create(tempdirs.LOAD_PREFIX), flush=True); time.sleep(60)"
)


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private temp dir for this process and its children."""
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.setattr("tempfile.tempdir", str(base))
    yield base


def _default_signals() -> None:
    # The child starts as from a terminal: SIGTERM and SIGHUP at their defaults. Under nohup (or any
    # runner that ignores SIGHUP) the child would inherit SIG_IGN, which the CLI keeps by design
    # (tempdirs.signals_as_interrupts), and a SIGHUP test would wait for nothing.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def start(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )


def folder_of(child: subprocess.Popen[str]) -> Path:
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line, child.stderr.read() if child.stderr else ""
    return Path(line)


def test_a_folder_left_by_a_sigkilled_process_is_swept_at_the_next_start(
    tmpdir_env: Path, tmp_path: Path
) -> None:
    child = start(OWNER)
    left = folder_of(child)
    (left / "spill-00001.ndjson").write_bytes(b"x" * 4096)
    child.kill()
    child.wait()
    assert left.is_dir()  # SIGKILL cannot be caught
    db = tmp_path / "kept.duckdb"
    code = main(["load", "--schema", "exposure.v1", "--database", str(db), "--input",
                 str(TINY / "exposures.jsonl"), "--no-progress"])  # the next start  # fmt: skip
    assert code == 0
    assert not left.exists()
    assert list(tmpdir_env.iterdir()) == []  # and its own folder is gone too


def test_a_live_owners_folder_is_left(tmpdir_env: Path) -> None:
    child = start(OWNER)
    try:
        theirs = folder_of(child)
        assert tempdirs.sweep() == []
        assert theirs.is_dir()
    finally:
        child.kill()
        child.wait()


def test_a_live_owner_in_another_pid_namespace_keeps_its_folder(tmpdir_env: Path) -> None:
    """Two containers sharing one /tmp: the marker's pid means nothing here (shown by
    rewriting it to a pid that does not exist), but the owner's lock on the marker does; once
    the owner dies the kernel drops the lock and the folder is swept."""
    child = start(OWNER)
    try:
        theirs = folder_of(child)
        marker = theirs / tempdirs.MARKER
        with marker.open("r+") as f:  # same inode: the owner's lock stays on it
            f.truncate(0)
            f.write("999999999 1 -\n")
        assert not tempdirs.owner_alive(marker.read_text())  # the pid check alone says stale
        assert tempdirs.sweep() == []
        assert theirs.is_dir()
    finally:
        child.kill()
        child.wait()
    assert tempdirs.sweep() == [theirs]


def test_a_marker_being_written_is_not_read_as_a_dead_owner(tmpdir_env: Path) -> None:
    """Between creating the marker and writing it, a sweep reads it empty (or partial): such a
    folder is treated as unmarked, kept until it is old."""
    for text in ("", "12"):
        folder = tmpdir_env / f"{tempdirs.RUN_PREFIX}new{len(text)}"
        folder.mkdir()
        (folder / tempdirs.MARKER).write_text(text)
        assert tempdirs.sweep() == []
        assert folder.is_dir()


def test_a_reused_pid_does_not_keep_a_dead_owners_folder(tmpdir_env: Path) -> None:
    """The marker names a live pid (ours) with another start time: its owner is gone."""
    folder = tmpdir_env / f"{tempdirs.RUN_PREFIX}reused"
    folder.mkdir()
    pid, started, boot = tempdirs.owner_stamp().split()
    (folder / tempdirs.MARKER).write_text(f"{pid} {int(started) - 1} {boot}\n")
    assert tempdirs.sweep() == [folder]
    # Ours, exactly: kept.
    folder.mkdir()
    (folder / tempdirs.MARKER).write_text(tempdirs.owner_stamp() + "\n")
    assert tempdirs.sweep() == []


def test_unmarked_folders_are_swept_only_when_old(tmpdir_env: Path) -> None:
    young = tmpdir_env / f"{tempdirs.LOAD_PREFIX}young"
    old = tmpdir_env / f"{tempdirs.LOAD_PREFIX}old"
    young.mkdir()
    old.mkdir()
    past = time.time() - tempdirs.UNMARKED_GRACE_SECONDS - 60
    os.utime(old, (past, past))
    assert tempdirs.sweep() == [old]
    assert young.is_dir()


def test_links_other_names_and_other_users_folders_are_left(
    tmpdir_env: Path, tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / tempdirs.MARKER).write_text("999999999 1 -\n")  # a dead owner, were it followed
    link = tmpdir_env / f"{tempdirs.RUN_PREFIX}link"
    link.symlink_to(precious)
    other_name = tmpdir_env / "someone-else-run-x"
    other_name.mkdir()
    (other_name / tempdirs.MARKER).write_text("999999999 1 -\n")
    expected = [link, other_name]
    if os.geteuid() == 0:
        foreign = tmpdir_env / f"{tempdirs.RUN_PREFIX}foreign"
        foreign.mkdir()
        (foreign / tempdirs.MARKER).write_text("999999999 1 -\n")
        os.chown(foreign, 65534, 65534)
        expected.append(foreign)
    assert tempdirs.sweep() == []
    assert all(os.path.lexists(p) for p in expected)
    assert (precious / tempdirs.MARKER).exists()


def wait_for(pattern: str, base: Path, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(base.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"{pattern} did not appear in {base}")


# `load` with the chunk planning slowed down: the signal arrives while the load holds its folder.
SLOW_LOAD = (
    "import sys, time; from recsys_eval import loader; from recsys_eval.cli import main\n"
    "plan = loader._plan_chunks\n"
    "def slow(*a, **k):\n"
    "    print('loading', flush=True); time.sleep(60); return plan(*a, **k)\n"
    "loader._plan_chunks = slow\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_load_removes_its_folder(
    tmpdir_env: Path, tmp_path: Path, signum: int
) -> None:
    db = tmp_path / "kept.duckdb"
    child = start(SLOW_LOAD, "load", "--schema", "exposure.v1", "--database", str(db),
                  "--input", str(TINY / "exposures.jsonl"), "--no-progress")  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "loading"
    folder = wait_for(f"{tempdirs.LOAD_PREFIX}*", tmpdir_env)
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    name = signal.Signals(signum).name
    assert child.returncode == 128 + signum
    assert err == f"terminated ({name}): nothing was written\n"
    assert not folder.exists()
    assert list(tmpdir_env.iterdir()) == []


def dbt_children(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (the run's work folder)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_sigterm_during_a_run_removes_its_folder_and_kills_dbt(
    tmpdir_env: Path, tmp_path: Path
) -> None:
    """The signal arrives once dbt's child process has started (its log folder exists); ~10 s on
    a busy 2-core machine."""
    code = "import sys; from recsys_eval.cli import main; sys.exit(main(sys.argv[1:]))"
    child = subprocess.Popen(
        [sys.executable, "-c", code, "run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"),
         "--config", str(CONFIGS / "offline.ci.yaml"), "--output", str(tmp_path / "r.json"),
         "--quiet"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RECSYS_EVAL_PLAN_CACHE": "0"},  # dbt, not a replayed plan
    )  # fmt: skip
    folder = wait_for(f"{tempdirs.RUN_PREFIX}*", tmpdir_env)
    wait_for("logs", folder)  # dbt is running
    assert dbt_children(str(folder))
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM
    assert err == "terminated (SIGTERM): nothing was written\n"
    assert not folder.exists()
    assert not (tmp_path / "r.json").exists()
    assert dbt_children(str(folder)) == []
