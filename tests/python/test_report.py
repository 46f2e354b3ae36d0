"""Report helpers: next steps, number formatting, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recsys_eval.errors import RecsysEvalError
from recsys_eval.report import (
    NEXT_STEP_BASELINE,
    NEXT_STEP_FAIL,
    NEXT_STEP_JOINS,
    NEXT_STEP_SAMPLE,
    canonical,
    dumps,
    next_steps,
    validate_against,
    write_atomic,
)


def test_next_steps_order_and_cut() -> None:
    steps = next_steps(
        decision="fail",
        mode="offline",
        has_baseline=False,
        outcome_join_rate=0.5,
        cases_evaluated=3,
    )
    assert steps == [NEXT_STEP_FAIL, NEXT_STEP_BASELINE, NEXT_STEP_JOINS]
    assert next_steps(
        decision="not_configured",
        mode="offline",
        has_baseline=True,
        outcome_join_rate=1.0,
        cases_evaluated=3,
    ) == [NEXT_STEP_SAMPLE]
    assert (
        next_steps(
            decision="pass",
            mode="ope",
            has_baseline=False,
            outcome_join_rate=0.0,
            cases_evaluated=50,
        )
        == []
    )


def test_numbers_are_written_like_the_reference() -> None:
    assert canonical({"a": 0.0, "b": 1.0, "c": 0.3333333333333333, "d": [2.0, 2.5]}) == {
        "a": 0,
        "b": 1,
        "c": 0.3333333333333333,
        "d": [2, 2.5],
    }
    assert (
        dumps({"b": 1.0, "a": {"z": 0.5, "y": 0}})
        == '{\n  "a": {\n    "y": 0,\n    "z": 0.5\n  },\n  "b": 1\n}\n'
    )
    with pytest.raises(RecsysEvalError, match="non-finite"):
        dumps({"p": float("nan")})


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_atomic(target, "one\n")
    write_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_write_atomic_to_a_missing_folder_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(RecsysEvalError, match="folder .* does not exist"):
        write_atomic(tmp_path / "no" / "r.json", "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_write_atomic_to_an_unwritable_folder_fails_clearly(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(RecsysEvalError, match="cannot write"):
        write_atomic(ro / "r.json", "x")


def test_report_schema_is_enforced() -> None:
    validate_against(
        {
            "run_id": "x",
            "mode": "offline",
            "created_at": "2025-01-01T00:00:00Z",
            "version": "0.1.0",
            "summary": {"cases_evaluated": 1},
        },
        "report.v1",
    )
    with pytest.raises(RecsysEvalError, match="cases_evaluated"):
        validate_against(
            {
                "run_id": "x",
                "mode": "offline",
                "created_at": "2025-01-01T00:00:00Z",
                "version": "0.1.0",
                "summary": {},
            },
            "report.v1",
        )
    with pytest.raises(RecsysEvalError, match="created_at"):
        validate_against(
            {
                "run_id": "x",
                "mode": "offline",
                "created_at": "yesterday",
                "version": "0.1.0",
                "summary": {"cases_evaluated": 1},
            },
            "report.v1",
        )
