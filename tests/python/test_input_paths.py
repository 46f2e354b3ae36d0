"""Dataset and `load --input` paths that are not regular readable files (issue 16, item 4).

A dataset YAML (possibly someone else's) or a command line could point at /proc/self/environ
(the process's environment, secrets included), a FIFO or /dev/zero (a read that blocks or never
ends), a directory, or a file this user cannot read. Each is refused before anything is loaded,
with the YAML file, the key, the path and what to do.
"""

from __future__ import annotations

import os
import pwd
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT

from recsys_eval.cli import main
from recsys_eval.config import load_run_config
from recsys_eval.errors import EXIT_ERROR, RecsysEvalError
from recsys_eval.inputs import check_input_file

TINY = ROOT / "examples" / "tiny"
CONFIG = ROOT / "configs" / "offline.ci.yaml"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "exposures.fifo"
    os.mkfifo(path)
    return path


def dataset(tmp_path: Path, outcomes: Path) -> Path:
    path = tmp_path / "dataset.yaml"
    path.write_text(
        f"exposures: {{type: jsonl, path: {TINY / 'exposures.jsonl'}}}\n"
        f"outcomes: {{type: jsonl, path: {outcomes}}}\n"
    )
    return path


@pytest.mark.parametrize(
    ("target", "what"),
    [
        ("fifo", "is a FIFO (named pipe), not a regular file"),
        ("/dev/zero", "is a character device, not a regular file"),
        ("folder", "is a directory, not a file"),
        ("/proc/self/environ", "is a kernel pseudo-file under /proc, not a data file"),
    ],
)
def test_the_dataset_yaml_cannot_point_at_a_non_file(
    tmp_path: Path, fifo: Path, target: str, what: str
) -> None:
    path = {"fifo": fifo, "folder": tmp_path}.get(target, Path(target))
    ds = dataset(tmp_path, path)
    with pytest.raises(RecsysEvalError) as info:
        load_run_config(ds, CONFIG)
    assert str(info.value) == (
        f"{ds}: outcomes.path: {path.resolve()}: {what}; give the path of a JSONL file"
        + (" (pipes and devices are never read)" if "not a regular" in what else "")
    )


def test_a_run_with_a_fifo_in_the_dataset_loads_nothing(
    tmp_path: Path, fifo: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The exposures (listed first) are not loaded either: the kept database is not even created,
    and the FIFO is never opened (which would block)."""
    monkeypatch.chdir(ROOT)
    db = tmp_path / "kept.duckdb"
    code = main(["run", "--dataset", str(dataset(tmp_path, fifo)), "--config", str(CONFIG),
                 "--output", str(tmp_path / "r.json"), "--database", str(db)])  # fmt: skip
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outcomes.path" in err and "is a FIFO" in err
    assert not db.exists()


def test_load_refuses_proc_files_before_opening_the_database(tmp_path: Path, capsys) -> None:
    db = tmp_path / "kept.duckdb"
    code = main(["load", "--schema", "exposure.v1", "--database", str(db), "--input",
                 str(TINY / "exposures.jsonl"), "/proc/self/environ"])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err == (
        "error: --input: /proc/self/environ: is a kernel pseudo-file under /proc, not a data "
        "file; give the path of a JSONL file\n"
    )
    assert not db.exists()  # the first, valid file was not loaded either


def test_a_link_to_a_proc_file_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "innocent.jsonl"
    link.symlink_to("/proc/self/environ")
    with pytest.raises(RecsysEvalError, match="kernel pseudo-file under /proc"):
        check_input_file(link)


def test_a_link_to_a_regular_file_is_accepted(tmp_path: Path) -> None:
    link = tmp_path / "exposures.jsonl"
    link.symlink_to(TINY / "exposures.jsonl")
    assert check_input_file(link) == link


def test_an_unreadable_file_is_refused() -> None:
    """As root every file is readable: the check then runs with the effective uid of nobody."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)  # nobody may look the file up, not read it
        secret = Path(folder) / "shadow.jsonl"
        secret.write_text("{}\n")
        secret.chmod(0o600)
        with pytest.raises(RecsysEvalError) as info, as_nobody():
            check_input_file(secret, "--input")
    assert str(info.value) == (
        f"--input: {secret}: cannot be opened for reading (Permission denied); check its "
        "permissions"
    )


@contextmanager
def as_nobody() -> Iterator[None]:
    if os.geteuid() != 0:
        yield
        return
    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user nobody to drop root's permissions to")
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
