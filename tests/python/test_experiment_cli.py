"""`recsys-eval run --mode experiment | aa-check` end to end on the bundled tiny data.

The golden experiment report (reference §11.3) is reproduced by the CLI to 1e-12; the
everything-enabled run of §11.6 (e) (CUPED, power, SRM by segment, the decision with its gates and
exit code 3, Bonferroni); the playbook decision; the A/A summary; and the pure decision rules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import jsonschema
import pytest
from report_compare import assert_report_close as close

from recsys_eval.experiment_report import aa_check_section, decide, power_analysis

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-12

GOLDEN_CONFIG = REPO / "configs" / "experiment.golden.yaml"
EVERYTHING = """
mode: experiment
experiment:
  experiment_id: "exp_123"
  control_variant: "A"
  primary_metrics: ["ctr", "conversion_rate", "revenue_per_request"]
  slice_keys: ["tenant"]
  guardrails: {max_latency_p95_ms: 100, max_error_rate: 0, max_empty_rate: 0.5}
  multiple_comparisons: {method: "%(method)s", alpha: 0.05}
  cuped: {enabled: true, covariate_key: "pre_period_ctr"}
  power: {metric: ctr, baseline_rate: 0.10, mde: 0.01, alpha: 0.05, power: 0.8, daily_samples: 10000}
  srm: {enabled: true, alpha: 0.001, min_sample: 0, slice_keys: ["tenant"]}
  decision: {enabled: true, guardrail_gate: true, srm_gate: true, policy: %(policy)s}
"""


def run(
    tmp_path: Path, mode: str, config: Path | str, *extra: str
) -> tuple[subprocess.CompletedProcess, Path]:
    if isinstance(config, str):
        path = tmp_path / "eval.yaml"
        path.write_text(config)
        config = path
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys_eval.cli",
            "run",
            "--mode",
            mode,
            "--dataset",
            str(REPO / "configs" / "dataset.tiny.yaml"),
            "--config",
            str(config),
            "--output",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return proc, out


def test_golden_experiment_report(tmp_path, golden):
    proc, out = run(tmp_path, "experiment", GOLDEN_CONFIG)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    expected = golden("experiment")
    close(report["experiment"], expected["experiment"])
    # nothing the golden omits appears where the reference omits it
    assert "throughput_rps" not in report["experiment"]["variants"][1]
    assert "segment" not in report["experiment"]["significance"][0]
    close(report["data_quality"], expected["data_quality"])
    close(report["summary"], expected["summary"])
    # new: lift intervals on every test
    ctr = report["experiment"]["significance"][0]
    assert ctr["absolute_lift"] == -0.5
    assert ctr["absolute_lift_ci"]["lower"] < -0.5 < ctr["absolute_lift_ci"]["upper"]


@pytest.mark.parametrize("method", ["fdr_bh", "bonferroni"])
def test_everything_enabled_reference_policy(tmp_path, method):
    """§11.6 (e): CUPED, power, SRM, the reference decision (fail, exit 3)."""
    proc, out = run(tmp_path, "experiment", EVERYTHING % {"method": method, "policy": "reference"})
    assert proc.returncode == 3, proc.stderr
    assert "decision=fail: primary metric regression" in proc.stderr
    exp = json.loads(out.read_text())["experiment"]
    close(
        exp["cuped"],
        {
            "enabled": True,
            "covariate_key": "pre_period_ctr",
            "theta_ctr": 26.923076923076888,
            "theta_conversion_rate": -7.692307692307683,
            "coverage_rate": 1,
        },
    )
    # θ and the adjusted rates differ from the Go run in the 14th digit (summation order)
    by_variant = {v["variant"]: v for v in exp["variants"]}
    assert by_variant["A"]["ctr_adjusted"] == pytest.approx(0.4102564102564106, abs=1e-12)
    assert by_variant["A"]["conversion_rate_adjusted"] == pytest.approx(
        0.0256410256410255, abs=1e-12
    )
    assert by_variant["B"]["ctr_adjusted"] == pytest.approx(0.1794871794871793, abs=1e-12)
    assert by_variant["B"]["conversion_rate_adjusted"] == pytest.approx(
        0.9487179487179488, abs=1e-12
    )
    assert exp["power"]["sample_size_per_variant"] == 14751
    assert exp["power"]["estimated_days"] == pytest.approx(2.9502, abs=TOL)
    close(
        exp["srm"]["global"],
        {
            "observed": {"A": 2, "B": 1},
            "expected": {"A": 1, "B": 1},
            "p_value": 0.5637028616507731,
            "detected": False,
            "sample_size": 3,
        },
    )
    assert list(exp["srm"]["by_segment"]) == ["tenant="]
    # beyond the reference: CUPED-adjusted tests, guardrail non-inferiority, SRM practical size
    cuped_ctr = exp["cuped"]["tests"][0]
    assert (cuped_ctr["metric"], cuped_ctr["variant"]) == ("ctr", "B")
    assert cuped_ctr["absolute_lift"] == pytest.approx(
        by_variant["B"]["ctr_adjusted"] - by_variant["A"]["ctr_adjusted"], abs=1e-12
    )
    latency = [
        t for t in exp["guardrails"]["non_inferiority"] if t["guardrail"] == "latency_mean_relative"
    ]
    assert latency[0]["variant_value"] == 220 and latency[0]["non_inferior"] is False
    assert exp["srm"]["global"]["max_share_deviation"] == pytest.approx(1 / 6, abs=1e-12)
    decision = json.loads((tmp_path / "report.json.decision.json").read_text())
    close(
        decision,
        {
            "decision": "fail",
            "reason": "primary metric regression",
            "control_variant": "A",
            "candidate_variant": "B",
            "primary_metrics": [
                {"metric": "ctr", "delta": -0.5, "relative_delta": -1, "threshold": 0},
                {"metric": "conversion_rate", "delta": 1, "relative_delta": 0, "threshold": 0},
                {"metric": "revenue_per_request", "delta": 10, "relative_delta": 0, "threshold": 0},
            ],
            "guardrails": [
                {"metric": "latency_p95_ms", "value": 220, "threshold": 100, "passed": False},
                {"metric": "error_rate", "value": 0, "threshold": 0, "passed": True},
                {"metric": "empty_rate", "value": 0, "threshold": 0.5, "passed": True},
            ],
            "thresholds": {},
            "dataset_window": {"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:02:00Z"},
            "srm": {"detected": False, "p_value": 0.5637028616507731, "alpha": 0.001},
        },
    )
    schema = json.loads((REPO / "schemas" / "decision.v1.json").read_text())
    jsonschema.validate(decision, schema)
    tests = {(t["metric"], t.get("segment")): t for t in exp["significance"]}
    if method == "bonferroni":
        assert tests[("ctr", None)]["adjusted_p_value"] == 1
        assert tests[("conversion_rate", None)]["adjusted_p_value"] == pytest.approx(
            0.33305806665420157, abs=TOL
        )


def test_playbook_decision_rolls_back_on_guardrail_breach(tmp_path):
    database = tmp_path / "run.duckdb"
    config = EVERYTHING % {"method": "fdr_bh", "policy": "playbook"}
    proc, _ = run(tmp_path, "experiment", config, "--database", str(database))
    assert proc.returncode == 3, proc.stderr
    decision = json.loads((tmp_path / "report.json.decision.json").read_text())
    assert decision["policy"] == "playbook"
    assert decision["verdict"] == "rollback" and decision["decision"] == "fail"
    assert decision["reasons"] == ["guardrail breached: latency_p95_ms"]
    jsonschema.validate(decision, json.loads((REPO / "schemas" / "decision.v2.json").read_text()))
    # the decision is also a row of the kept run database, next to the marts
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            "select policy, verdict, decision, candidate_variant from experiment_decisions"
        ).fetchall()
    assert rows == [("playbook", "rollback", "fail", "B")]


def test_aa_check(tmp_path):
    config = """
mode: aa-check
experiment:
  experiment_id: "exp_123"
  slice_keys: ["tenant"]
  aa_check: {enabled: true}
"""
    proc, out = run(tmp_path, "aa-check", config)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["run_id"].startswith("aa-check-")
    aa = report["aa_check"]
    # tiny: ctr p = 0.386, conversion_rate p = 0.083, global and tenant=t1
    assert aa["total_tests"] == 4
    assert aa["metrics"] == [
        {
            "metric": "conversion_rate",
            "by_segment": False,
            "counts": {"0.05": 0, "0.01": 0, "0.001": 0},
        },
        {
            "metric": "conversion_rate",
            "by_segment": True,
            "counts": {"0.05": 0, "0.01": 0, "0.001": 0},
        },
        {"metric": "ctr", "by_segment": False, "counts": {"0.05": 0, "0.01": 0, "0.001": 0}},
        {"metric": "ctr", "by_segment": True, "counts": {"0.05": 0, "0.01": 0, "0.001": 0}},
    ]
    assert aa["uniformish"] is True


def test_aa_summary_flags_too_many_small_p_values():
    tests = [{"metric": "ctr", "scope": "global", "p_value": p} for p in [0.001] * 3 + [0.5] * 17]
    aa = aa_check_section(tests, [0.05, 0.01, 0.001])
    assert aa["metrics"][0]["counts"] == {"0.05": 3, "0.01": 3, "0.001": 0}
    # 20 tests at 0.05: 3 <= 2.5 (x 20 x 0.05 = 2.5)? no: 3 > 2.5
    assert aa["uniformish"] is False


def test_power_matches_the_closed_form():
    out = power_analysis(
        {"baseline_rate": 0.1, "mde": 0.01, "alpha": 0.05, "power": 0.8, "daily_samples": 10000}
    )
    assert out["sample_size_per_variant"] == 14751
    assert power_analysis({"baseline_rate": 0.95, "mde": 0.1}) is None
    assert power_analysis({"baseline_rate": 0.1, "mde": 0}) is None


def _section(ctr_test: dict, guard_pass: bool = True, srm_detected: bool = False) -> tuple:
    section = {
        "variants": [
            {"variant": "A", "ctr": 0.10, "conversion_rate": 0.01, "revenue_per_request": 1.0},
            {"variant": "B", "ctr": 0.12, "conversion_rate": 0.01, "revenue_per_request": 1.0},
        ],
        "significance": [{"metric": "ctr", "variant": "B", **ctr_test}],
        "srm": {"alpha": 0.001, "global": {"detected": srm_detected, "p_value": 1e-6}},
    }
    arms = [
        {"variant": "A", "is_control": True, "is_candidate": False},
        {"variant": "B", "is_control": False, "is_candidate": True},
    ]
    guard = [
        {
            "variant": "B",
            "latency_p95_ms": 90.0,
            "max_latency_p95_ms": 100.0,
            "pass_latency": guard_pass,
            "error_rate": 0.0,
            "max_error_rate": 0.0,
            "pass_error_rate": True,
            "empty_rate": 0.0,
            "max_empty_rate": 0.0,
            "pass_empty_rate": True,
        }
    ]
    return section, arms, guard


def test_playbook_holds_a_ship_when_a_guardrail_is_not_shown_non_inferior():
    section, arms, guard = _section({"p_value": 0.001, "significant": True})
    section["guardrails"] = {
        "non_inferiority": [
            {"variant": "B", "guardrail": "error_rate", "test_status": "ok", "non_inferior": True},
            {"variant": "B", "guardrail": "empty_rate", "test_status": "ok", "non_inferior": False},
        ]
    }
    exp = {"primary_metrics": ["ctr"], "srm": {"enabled": True}, "decision": {}}
    out = decide(section, arms, guard, exp, {"outcome_join_rate": 1.0})
    assert out["verdict"] == "hold"
    assert out["reasons"] == [
        "guardrail non-inferiority not shown: empty_rate",
        "primary metric significantly better: ctr",
    ]


@pytest.mark.parametrize(
    ("test", "guard_pass", "srm", "joins", "threshold", "verdict"),
    [
        ({"p_value": 0.001, "significant": True}, True, False, 1.0, 0.0, "ship"),
        ({"p_value": 0.001, "significant": True}, True, False, 1.0, 0.5, "hold"),  # +20 % < 50 %
        ({"p_value": 0.3, "significant": False}, True, False, 1.0, 0.0, "hold"),
        ({"p_value": 0.001, "significant": True}, False, False, 1.0, 0.0, "rollback"),
        ({"p_value": 0.001, "significant": True}, True, True, 1.0, 0.0, "hold"),
        ({"p_value": 0.001, "significant": True}, True, False, 0.9, 0.0, "hold"),
        (
            {"test_status": "pooled_rate_above_one", "significant": False},
            True,
            False,
            1.0,
            0.0,
            "hold",
        ),
    ],
)
def test_playbook_rules(test, guard_pass, srm, joins, threshold, verdict):
    section, arms, guard = _section(test, guard_pass, srm)
    exp = {
        "primary_metrics": ["ctr"],
        "srm": {"enabled": True},
        "decision": {"primary_thresholds": {"ctr": threshold}},
    }
    out = decide(section, arms, guard, exp, {"outcome_join_rate": joins, "assignment_join_rate": 1})
    assert out["verdict"] == verdict, out["reasons"]
    assert out["decision"] == {"rollback": "fail"}.get(verdict, verdict)
    assert out["reason"] == out["reasons"][0]


def test_show_renders_the_decision_and_lifts(tmp_path):
    from recsys_eval.commands.show import render

    proc, out = run(tmp_path, "experiment", EVERYTHING % {"method": "holm", "policy": "playbook"})
    assert proc.returncode == 3, proc.stderr
    text = render(json.loads(out.read_text()))
    assert "decision: ROLLBACK (playbook policy): B vs control A" in text
    assert "- guardrail breached: latency_p95_ms" in text
    assert "B ctr              -0.5000 [-1.1930, +0.1930]  p=0.3865" in text
    assert "guardrail breach: B latency" in text
    assert "SRM: p=0.5637" in text
