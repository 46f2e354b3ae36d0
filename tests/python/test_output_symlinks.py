"""Output paths that are symbolic links (issue 16, item 3).

A link planted where a report, a rendered report, a pseudonymized file, a decision file or a
history copy is to be written would redirect the write (and a chmod 0600) to the link's target.
Every writer refuses such a path with a message naming it, before any work; the temporary file
is created with O_EXCL / O_NOFOLLOW, so a link at a temporary name is never followed either.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CONFIGS, ROOT

from recsys_eval import report, tempdirs
from recsys_eval.cli import main
from recsys_eval.commands import run as run_cmd
from recsys_eval.errors import EXIT_ERROR, RecsysEvalError

VICTIM_TEXT = "do not overwrite me\n"
PREFIX = "cannot write {link}: it is a symbolic link (to {target}); refusing to write through it"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the attacker wants overwritten (say ~/.bashrc), mode 0644."""
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    path.chmod(0o644)
    return path


def untouched(path: Path) -> bool:
    return path.read_text() == VICTIM_TEXT and (path.stat().st_mode & 0o777) == 0o644


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to start the work (a temporary folder, a load) fails the test."""

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the run started its work before refusing the output")

    monkeypatch.setattr(tempdirs, "create", forbidden)
    monkeypatch.setattr(run_cmd, "load_sources", forbidden)


def test_write_atomic_refuses_a_link_and_leaves_its_target(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    with pytest.raises(RecsysEvalError) as info:
        report.write_atomic(link, "{}\n")
    assert str(info.value).startswith(PREFIX.format(link=link, target=victim))
    assert "remove the link or choose another path" in str(info.value)
    assert untouched(victim) and link.is_symlink()


def test_a_dangling_link_is_refused_too(tmp_path: Path) -> None:
    link = tmp_path / "report.json"
    target = tmp_path / "created-by-the-write.txt"
    link.symlink_to(target)
    with pytest.raises(RecsysEvalError, match="is a symbolic link"):
        report.write_atomic(link, "{}\n")
    assert not target.exists()


def test_a_link_at_the_temporary_name_is_not_followed(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first temporary name the writer tries is a planted link: it is skipped (O_EXCL)."""
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    (tmp_path / ".report.json.planted.tmp").symlink_to(victim)
    report.write_atomic(tmp_path / "report.json", "{}\n")
    assert (tmp_path / "report.json").read_text() == "{}\n"
    assert ((tmp_path / "report.json").stat().st_mode & 0o777) == 0o600
    assert untouched(victim)


def test_run_refuses_a_linked_output_before_any_work(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch, capsys, no_work
) -> None:
    monkeypatch.chdir(ROOT)
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(CONFIGS / "offline.ci.yaml"), "--output", str(link)])  # fmt: skip
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: " + PREFIX.format(link=link, target=victim))
    assert err.count("\n") == 1
    assert untouched(victim)


def test_run_refuses_a_linked_decision_file_before_any_work(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch, capsys, no_work
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "report.json"
    link = tmp_path / "report.json.decision.json"  # the default <output>.decision.json
    link.symlink_to(victim)
    code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(CONFIGS / "experiment.demo.yaml"), "--output", str(out)])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: " + PREFIX.format(link=link, target=victim))
    assert untouched(victim) and not out.exists()


def test_run_refuses_a_configured_linked_decision_path(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch, capsys, no_work
) -> None:
    monkeypatch.chdir(ROOT)
    link = tmp_path / "decision.json"
    link.symlink_to(victim)
    config = tmp_path / "experiment.yaml"
    text = (CONFIGS / "experiment.demo.yaml").read_text()
    config.write_text(
        text.replace(
            "decision: {enabled: true, policy: playbook}",
            f"decision: {{enabled: true, policy: playbook, output_path: {json.dumps(str(link))}}}",
        )
    )
    code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(config), "--output", str(tmp_path / "report.json")])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: " + PREFIX.format(link=link, target=victim))
    assert untouched(victim)


def test_run_refuses_a_link_planted_in_the_history_dir(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch, capsys, no_work
) -> None:
    """The history copy's name is known before the run (offline-<start time>.json)."""
    monkeypatch.chdir(ROOT)
    fixed = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(run_cmd, "utc_now", lambda: fixed)
    history = tmp_path / "history"
    history.mkdir()
    link = history / "offline-20240301T120000Z.json"
    link.symlink_to(victim)
    config = tmp_path / "offline.yaml"
    config.write_text(
        (CONFIGS / "offline.ci.yaml")
        .read_text()
        .replace("offline:\n", f"offline:\n  history_dir: {json.dumps(str(history))}\n", 1)
    )
    code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(config), "--output", str(tmp_path / "report.json")])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: " + PREFIX.format(link=link, target=victim))
    assert untouched(victim) and not (tmp_path / "report.json").exists()


def test_render_refuses_a_linked_output(tmp_path: Path, victim: Path, capsys) -> None:
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    # Refused before the report is even read: a missing report is not what is reported.
    code = main(["render", "--report", str(tmp_path / "missing.json"), "--format", "html",
                 "--output", str(link)])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: " + PREFIX.format(link=link, target=victim))
    assert untouched(victim)


def test_pseudonymize_refuses_a_linked_output(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("RECSYS_EVAL_PSEUDONYMIZE_KEY", "k" * 32)
    link = tmp_path / "pseudo.jsonl"
    link.symlink_to(victim)
    code = main(["pseudonymize", "--schema", "exposure.v1", "--input",
                 str(ROOT / "examples/tiny/exposures.jsonl"), "--output", str(link)])  # fmt: skip
    assert code == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: " + PREFIX.format(link=link, target=victim))
    assert untouched(victim) and link.is_symlink()
    assert os.readlink(link) == str(victim)
