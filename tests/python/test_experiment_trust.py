"""Experiment results that cannot silently be the wrong way round (issue 20 items 2 and 3).

- The control: without `experiment.control_variant` the arm taken as control is named loudly (stderr
  and a report warning, with the exposures behind the choice); a tie in exposures, or an arm named
  like a control (control, ctrl, baseline) that is not the biggest, is refused as a config error.
- `--mode` contradicting the config's `mode:` is refused, naming both.
- The join-rate warnings mean broken data (outcomes or assignments that do not join), not the
  click-through-like exposure join rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_eval.config import load_run_config
from recsys_eval.errors import EXIT_ERROR, ConfigError
from recsys_eval.experiment_report import control_choice_warnings
from recsys_eval.report import join_rate_warnings

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO / "configs" / "dataset.tiny.yaml"


def arms(**exposures: int) -> list[dict]:
    """Rows of int_recsys_eval__experiment_arms: the observed arms and their exposures."""
    return [{"variant": v, "exposures": n, "is_observed": True} for v, n in exposures.items()]


# -- the choice of control ----------------------------------------------------------------------


def test_without_control_variant_the_biggest_arm_is_named_with_its_numbers() -> None:
    assert control_choice_warnings(arms(A=1200, B=1100), {}) == [
        "control_variant not set: took 'A' as control (most exposures: 1200 vs 1100 for 'B'); "
        "set experiment.control_variant to choose"
    ]
    # a control-named arm that is the biggest is taken, and still said
    (note,) = control_choice_warnings(arms(treatment=90, Control=100, other=5), {})
    assert note.startswith("control_variant not set: took 'Control' as control (most exposures:")
    assert "100 vs 90 for 'treatment', 5 for 'other'" in note


def test_a_configured_control_that_exists_says_nothing() -> None:
    assert control_choice_warnings(arms(A=10, B=10), {"control_variant": "B"}) == []
    assert control_choice_warnings(arms(A=10, control=5), {"control_variant": "A"}) == []
    assert control_choice_warnings([], {}) == []  # no assigned exposures: no control at all


def test_a_configured_control_without_exposures_is_said_too() -> None:
    (note,) = control_choice_warnings(arms(A=3, B=2), {"control_variant": "Z"})
    assert note.startswith("control_variant 'Z' has no assigned exposures: took 'A' as control")


def test_a_tie_in_exposures_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        control_choice_warnings(arms(B=500, A=500, C=20), {})
    message = str(err.value)
    assert "control_variant not set and the arms tie in exposures" in message
    assert "'A', 'B'" in message and "set experiment.control_variant to choose" in message
    assert err.value.exit_code == EXIT_ERROR
    # a tie below the biggest arm does not make the choice ambiguous
    assert control_choice_warnings(arms(A=9, B=5, C=5), {})


@pytest.mark.parametrize("name", ["control", "CTRL", "Baseline", " control "])
def test_a_control_named_arm_that_is_not_the_biggest_is_refused(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        control_choice_warnings(arms(**{name: 1100, "treatment": 1200}), {})
    message = str(err.value)
    assert f"the arm {name!r} is named like a control but 'treatment' has more exposures" in message
    assert "set experiment.control_variant to choose" in message


def test_cli_says_the_chosen_control_on_stderr_and_in_the_report(tmp_path: Path) -> None:
    """Tiny data without control_variant: A has 2 exposures, B 1; the decision still runs."""
    config = tmp_path / "eval.yaml"
    config.write_text(
        "mode: experiment\nexperiment:\n  primary_metrics: [ctr]\n"
        "  decision: {enabled: true, policy: reference}\n"
    )
    out = tmp_path / "report.json"
    proc = cli("--dataset", str(DATASET), "--config", str(config), "--output", str(out))
    note = (
        "control_variant not set: took 'A' as control (most exposures: 2 vs 1 for 'B'); "
        "set experiment.control_variant to choose"
    )
    assert proc.returncode == 3, proc.stderr  # the reference decision: ctr regressed
    assert f"warning: {note}" in proc.stderr
    report = json.loads(out.read_text())
    assert note in report["warnings"]
    assert report["experiment"]["decision"]["control_variant"] == "A"
    assert not [w for w in report["warnings"] if "join_rate" in w]  # healthy joins


# -- --mode against mode: -----------------------------------------------------------------------


def test_mode_flag_contradicting_the_config_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text("mode: offline\noffline:\n  metrics: [{name: ndcg, k: 3}]\n")
    with pytest.raises(ConfigError, match=r"--mode experiment contradicts mode: offline in"):
        load_run_config(DATASET, config, "experiment")
    # agreeing (in any case) or either one alone is fine
    assert load_run_config(DATASET, config, "Offline").mode == "offline"
    assert load_run_config(DATASET, config).mode == "offline"
    proc = cli("--mode", "ope", "--dataset", str(DATASET), "--config", str(config),
               "--output", str(tmp_path / "r.json"))  # fmt: skip
    assert proc.returncode == EXIT_ERROR
    assert "--mode ope contradicts mode: offline" in proc.stderr
    assert not (tmp_path / "r.json").exists()


# -- join-rate warnings -------------------------------------------------------------------------


def dq(exposure: float, outcome: float, assignment: float, assignments: int = 10) -> dict:
    return {
        "join_integrity": {
            "exposure_count": 100,
            "outcome_count": 10,
            "assignments_count": assignments,
            "exposure_join_rate": exposure,
            "outcome_join_rate": outcome,
            "assignment_join_rate": assignment,
        }
    }


def test_join_rate_warnings_mean_broken_data_not_click_through() -> None:
    # healthy data: 5 % of exposures have an outcome (a click rate), every outcome and assignment joins
    assert join_rate_warnings(dq(0.05, 1.0, 1.0), 0.95, with_assignments=True) == []
    assert join_rate_warnings(dq(0.05, 0.5, 0.9), 0.95, with_assignments=True) == [
        "low_outcome_join_rate: 0.5000 is below 0.95",
        "low_assignment_join_rate: 0.9000 is below 0.95",
    ]
    # outside experiment and aa-check the assignment rate is 0 by definition: no warning
    assert join_rate_warnings(dq(0.05, 1.0, 0.0, assignments=0), 0.95) == []


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", "run", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
