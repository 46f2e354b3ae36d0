"""Experiment results that cannot silently be the wrong way round (issue 20 items 2 and 3).

- The control: without `experiment.control_variant` the arm taken as control is named loudly (stderr
  and a report warning, with the exposures behind the choice); a tie in exposures, or an arm named
  like a control (control, ctrl, baseline) that is not the biggest, is refused as a config error.
- `--mode` contradicting the config's `mode:` is refused, naming both.
- The join-rate warnings mean broken data (outcomes or assignments that do not join), not the
  click-through-like exposure join rate.
- Guardrail non-inferiority margins come from the eval config (experiment.guardrails.<name>:
  {margin, relative, enabled}), change the decision, and every playbook reason carries its numbers
  (checked against scipy and a hand computation).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

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


# -- guardrail margins in the eval config --------------------------------------------------------

N = 300  # requests per arm: ctr A 10 %, B 30 %; mean latency A 100 ms, B 115 ms (+15 %)


def write_margin_dataset(folder: Path) -> Path:
    exposures, outcomes, assignments = [], [], []
    for arm, clicks, latencies in (("A", 30, (95, 105)), ("B", 90, (110, 120))):
        for i in range(N):
            rid, uid = f"{arm}{i}", f"u{arm}{i}"
            ts = f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}Z"
            exposures.append(
                {"request_id": rid, "user_id": uid, "ts": ts,
                 "items": [{"item_id": "i1", "rank": 1}], "context": {"tenant": "t1"},
                 "latency_ms": latencies[i % 2], "error": False}
            )  # fmt: skip
            assignments.append(
                {
                    "experiment_id": "exp_m",
                    "variant": arm,
                    "request_id": rid,
                    "user_id": uid,
                    "ts": ts,
                }
            )
            if i < clicks:
                outcomes.append(
                    {"request_id": rid, "user_id": uid, "item_id": "i1", "event_type": "click",
                     "value": 1, "ts": ts}
                )  # fmt: skip
    for name, rows in (
        ("exposures", exposures),
        ("outcomes", outcomes),
        ("assignments", assignments),
    ):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = folder / "dataset.yaml"
    dataset.write_text(
        "".join(f"{n}: {{type: jsonl, path: {folder / n}.jsonl}}\n"
                for n in ("exposures", "outcomes", "assignments"))
    )  # fmt: skip
    return dataset


MARGIN_CONFIG = """
mode: experiment
experiment:
  experiment_id: exp_m
  control_variant: A
  primary_metrics: [ctr]
  guardrails: %s
  decision: {enabled: true, policy: playbook}
"""


@pytest.fixture(scope="module")
def margin_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_margin_dataset(tmp_path_factory.mktemp("margins"))


def decide_with(folder: Path, dataset: Path, guardrails: str) -> tuple[int, dict, dict]:
    config = folder / "eval.yaml"
    config.write_text(MARGIN_CONFIG % guardrails)
    out = folder / "report.json"
    proc = cli("--dataset", str(dataset), "--config", str(config), "--output", str(out))
    assert proc.returncode in (0, 2, 3), proc.stderr
    report = json.loads(out.read_text())
    return proc.returncode, report, report["experiment"]["decision"]


def g(x: float) -> str:
    return f"{x:.4g}"


def test_default_latency_margin_holds_with_the_numbers(tmp_path: Path, margin_dataset) -> None:
    """B's mean latency is 15 % above A's: non-inferiority at today's +10 % is not shown -> hold,
    though ctr is significantly better; the reasons carry the numbers (scipy for the p-values)."""
    code, report, decision = decide_with(tmp_path, margin_dataset, "{}")
    assert (code, decision["verdict"]) == (2, "hold")
    ni = {t["guardrail"]: t for t in report["experiment"]["guardrails"]["non_inferiority"]}
    latency = ni["latency_mean"]
    assert (latency["margin_type"], latency["margin"]) == ("relative", 0.1)
    assert (latency["control_value"], latency["variant_value"]) == (100, 115)
    # H0 mu1 >= 1.1 mu0: z = (115 - 110) / sqrt(25 / N + 1.1^2 * 25 / N), p = Phi(z)
    z = (115 - 1.1 * 100) / math.sqrt(25 / N + 1.21 * 25 / N)
    assert latency["p_value"] == pytest.approx(stats.norm.cdf(z), rel=1e-9)
    assert decision["reasons"][0] == (
        "guardrail non-inferiority not shown: latency_mean (control 100, candidate 115; "
        f"margin +10% relative; p={latency['p_value']:.3g} >= alpha 0.05)"
    )
    # ctr 0.1 -> 0.3: the pooled two-proportion z-test (reference §5.6), by hand with scipy
    pooled = (30 + 90) / (2 * N)
    z_ctr = (0.3 - 0.1) / math.sqrt(pooled * (1 - pooled) * 2 / N)
    p_ctr = 2 * stats.norm.sf(abs(z_ctr))
    (ctr,) = [
        t
        for t in report["experiment"]["significance"]
        if t["metric"] == "ctr" and "segment" not in t
    ]
    assert ctr["p_value"] == pytest.approx(p_ctr, rel=1e-9)
    # the playbook's reason carries the per-user test (one request per user here: the unpooled
    # Wald test of two proportions), by hand with scipy
    (user_ctr,) = [
        t
        for t in report["experiment"]["readout"]["metric_tests"]
        if t["metric"] == "ctr" and "segment" not in t
    ]
    se = math.sqrt(0.3 * 0.7 / N + 0.1 * 0.9 / N)
    p_user = 2 * stats.norm.sf(0.2 / se)
    assert user_ctr["p_value"] == pytest.approx(p_user, rel=1e-9)
    ci = user_ctr["relative_lift_ci"]
    assert decision["reasons"][1] == (
        f"primary metric significantly better: ctr (control {g(0.1)}, candidate {g(0.3)}; "
        f"relative lift 200.00% CI [{100 * ci['lower']:.2f}%, {100 * ci['upper']:.2f}%]; "
        f"p={p_user:.3g}, adjusted p={user_ctr['adjusted_p_value']:.3g}; minimum relative lift 0%)"
    )
    assert ci["lower"] < 2 < ci["upper"]


@pytest.mark.parametrize(
    "guardrails",
    [
        "{latency_mean: {margin: 0.25, relative: true}}",  # +25 %: 115 is below 125
        "{latency_mean: {margin: 20, relative: false}}",  # +20 ms absolute: 115 below 120
    ],
)
def test_margins_from_yaml_change_the_decision(tmp_path: Path, margin_dataset, guardrails) -> None:
    code, report, decision = decide_with(tmp_path, margin_dataset, guardrails)
    assert (code, decision["verdict"]) == (0, "ship")
    latency = {t["guardrail"]: t for t in report["experiment"]["guardrails"]["non_inferiority"]}
    relative = "relative: true" in guardrails
    assert latency["latency_mean"]["margin_type"] == ("relative" if relative else "absolute")
    assert latency["latency_mean"]["non_inferior"] is True
    assert decision["reasons"][0].startswith("primary metric significantly better: ctr (control")


@pytest.mark.parametrize(
    ("guardrails", "message"),
    [
        ("{latency_mean: {relative: true}}", "experiment.guardrails.latency_mean.margin: required"),
        ("{error_rate: {margin: -0.1}}", "experiment.guardrails.error_rate.margin: must be >= 0"),
        ("{latency_mean: {margin: 10}}", "a relative margin is a fraction of the control"),
        ("{latency_p99: {margin: 0.1}}", "experiment.guardrails.latency_p99: unknown key"),
        ("{empty_rate: {margin: yes}}", "experiment.guardrails.empty_rate.margin"),
    ],
)
def test_bad_margins_are_refused_naming_the_key(tmp_path: Path, guardrails, message) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(MARGIN_CONFIG % guardrails)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_run_config(DATASET, config)


def test_margins_reach_dbt_with_todays_defaults() -> None:
    from recsys_eval.experiment_report import experiment_vars

    margins = experiment_vars({})["recsys_eval__experiment_guardrail_margins"]
    assert margins == {
        "error_rate": {"margin": 0.005, "relative": False},
        "empty_rate": {"margin": 0.01, "relative": False},
        "latency_mean": {"margin": 0.1, "relative": True},
    }
    custom = experiment_vars(
        {
            "guardrails": {
                "error_rate": {"margin": 0.2, "relative": True},
                "empty_rate": {"enabled": False},
            }
        }
    )["recsys_eval__experiment_guardrail_margins"]
    assert custom == {
        "error_rate": {"margin": 0.2, "relative": True},
        "latency_mean": {"margin": 0.1, "relative": True},
    }
