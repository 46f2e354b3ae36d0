"""Kept databases are private (issue 16, item 4).

A database kept with `load --database` or `run --database` holds raw rows, possibly personal data,
and quarantined raw lines: it is created 0600 (like the reports), and so is its write-ahead log
(`<db>.wal`, which DuckDB creates at the first write and removes at a checkpoint), in this process
and in dbt's child process. Measured with the process umask at 022, under which both were 0644.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CONFIGS, ROOT

from recsys_eval import dbt_runner, loader, warehouse
from recsys_eval.cli import main
from recsys_eval.commands import run as run_cmd
from recsys_eval.errors import RecsysEvalError

TINY = ROOT / "examples" / "tiny"


@pytest.fixture(autouse=True)
def usual_umask() -> Any:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_database_file_is_created_0600(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    warehouse.connect(db).close()
    assert mode(db) == 0o600


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    warehouse.connect(db).close()
    db.chmod(0o640)
    warehouse.connect(db).close()
    assert mode(db) == 0o640


def test_load_creates_the_database_and_its_wal_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAL exists between the load's commit and the close: its mode is read there."""
    db = tmp_path / "kept.duckdb"
    wal = Path(f"{db}.wal")
    seen: list[int] = []
    real = loader.load_file

    def load_and_look(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        seen.append(mode(wal))
        return result

    monkeypatch.setattr(loader, "load_file", load_and_look)
    code = main(["load", "--schema", "exposure.v1", "--input", str(TINY / "exposures.jsonl"),
                 "--database", str(db), "--no-progress"])  # fmt: skip
    assert code == 0
    assert seen == [0o600]
    assert mode(db) == 0o600
    assert os.umask(0o022) == 0o022  # the umask is restored afterwards


def test_run_creates_its_kept_database_and_wal_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dataset loads into --database; the build is replaced by a look at the files."""
    monkeypatch.chdir(ROOT)
    db = tmp_path / "run.duckdb"
    seen: dict[str, int] = {}

    def look(_cfg: Any, database: Path, *_args: Any, **_kwargs: Any) -> Any:
        con = warehouse.connect(database)  # as dbt would: a write creates the WAL
        con.execute("create table probe as select 1 as x")
        seen.update(db=mode(database), wal=mode(Path(f"{database}.wal")))
        con.close()
        raise RecsysEvalError("stop after the look")

    monkeypatch.setattr(run_cmd, "build_marts", look)
    code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(CONFIGS / "offline.ci.yaml"), "--output", str(tmp_path / "r.json"),
                 "--database", str(db)])  # fmt: skip
    assert code == 1
    assert seen == {"db": 0o600, "wal": 0o600}


def test_dbt_child_process_creates_private_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt opens the database in a child process: the child's umask is 077, so the WAL it writes
    is 0600. The child here is a stand-in that creates a file with the build's process options."""
    made = tmp_path / "made-by-child"
    real_run = subprocess.run

    def stand_in(_cmd: list[str], **kwargs: Any) -> Any:
        return real_run([sys.executable, "-c", f"open({str(made)!r}, 'w')"], **kwargs)

    monkeypatch.setattr(dbt_runner.subprocess, "run", stand_in)
    dbt_runner.build(tmp_path / "db.duckdb", {}, ["x"], tmp_path, parse_cache=False)
    assert mode(made) == 0o600
