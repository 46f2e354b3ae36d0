"""`recsys-eval run --mode experiment | aa-check` end to end on the bundled tiny data.

The golden experiment report (reference §11.3) is reproduced by the CLI to 1e-12; the
everything-enabled run of §11.6 (e) (CUPED, power, SRM by segment, the decision with its gates and
exit code 3, Bonferroni); the playbook decision, equal to fct_experiment_decision's row on several
configs; the A/A summary.
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
    # CUPED adjusts the share of requests with a click (the reference's ctr_adjusted): click_share
    cuped_ctr = exp["cuped"]["tests"][0]
    assert (cuped_ctr["metric"], cuped_ctr["variant"]) == ("click_share", "B")
    assert cuped_ctr["absolute_lift"] == pytest.approx(
        by_variant["B"]["ctr_adjusted"] - by_variant["A"]["ctr_adjusted"], abs=1e-12
    )
    latency = [t for t in exp["guardrails"]["non_inferiority"] if t["guardrail"] == "latency_mean"]
    assert latency[0]["variant_value"] == 220 and latency[0]["non_inferior"] is False
    assert (latency[0]["margin_type"], latency[0]["margin"]) == ("relative", 0.1)  # the default
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
    assert decision["reasons"] == ["guardrail breached: latency_p95_ms (candidate 220 > max 100)"]
    jsonschema.validate(decision, json.loads((REPO / "schemas" / "decision.v2.json").read_text()))
    # the decision is also a row of the kept run database, next to the marts
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            "select policy, verdict, decision, candidate_variant from experiment_decisions"
        ).fetchall()
    assert rows == [("playbook", "rollback", "fail", "B")]
    assert_decision_is_the_mart_row(database, decision)


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


# The decision's rules are the warehouse's (fct_experiment_decision, one dbt unit test per rule in
# models/marts/_recsys_eval__experiment_decision.yml); the CLI writes that row as its decision.
# Each config below, run end to end, must give the verdict and reasons derived by hand from the
# tiny data (A: ctr 0.5, B: ctr 0 and conversion_rate 1, no test significant, B's p95 latency
# 220 ms; 2 assignments to A and 1 to B) and a document equal to the mart's row.
DECISION_CONFIG = """
mode: experiment
experiment:
  experiment_id: "exp_123"
  control_variant: "A"
  primary_metrics: %(primary)s
  guardrails: {max_latency_p95_ms: %(latency)s}
  srm: {enabled: true, min_sample: 1, expected: %(expected)s, gate_enabled: %(srm_gate)s}
  decision: {enabled: true, policy: %(policy)s, primary_thresholds: %(thresholds)s}
"""
SKEWED = "{A: 1, B: 1000}"  # 2 : 1 observed against 1 : 1000 expected: SRM detected


@pytest.mark.parametrize(
    ("settings", "exit_code", "verdict", "reasons"),
    [
        # playbook, SRM failing: hold before anything else
        (
            {"policy": "playbook", "expected": SKEWED, "latency": 100},
            2,
            "hold",
            ["srm detected (p=%(srm_p).3g < alpha 0.001)"],
        ),
        # playbook, nothing significantly better: hold. The playbook reads the per-user tests
        # (experiment.readout.metric_tests): one user per arm (u1 has both of A's requests) gives
        # no variance, so neither metric has a test (the request-level z-test's p=0.386 treated
        # A's two requests as independent)
        (
            {"primary": '["CTR", "revenue_per_request"]'},
            2,
            "hold",
            [
                "primary metrics not significantly better beyond the minimum effect",
                # A: ctr 1/2, no revenue; B: ctr 0, revenue per request 10 (relative lift 0 when
                # the control is 0, §5.10)
                "no valid test for ctr (control 0.5, candidate 0; relative lift -100.00%% "
                "CI [n/a, n/a]; p=n/a, adjusted p=n/a; minimum relative lift 0%%)",
                "no valid test for revenue_per_request (control 0, candidate 10; "
                "relative lift 0.00%% CI [n/a, n/a]; p=n/a, adjusted p=n/a; minimum relative lift 0%%)",
            ],
        ),
        # reference: every delta at or above its threshold, guardrail breach ungated: ship
        ({"policy": "reference", "thresholds": "{ctr: -0.5}", "latency": 100}, 0, "ship", []),
        # reference: the same with srm.gate_enabled and a failing SRM: hold
        (
            {
                "policy": "reference",
                "thresholds": "{ctr: -0.5}",
                "expected": SKEWED,
                "srm_gate": "true",
            },
            2,
            "hold",
            ["srm detected"],
        ),
    ],
)
def test_decision_is_the_mart_row(tmp_path, settings, exit_code, verdict, reasons):
    values = {
        "primary": '["ctr"]',
        "latency": 0,
        "expected": "{}",
        "srm_gate": "false",
        "policy": "playbook",
        "thresholds": "{}",
        **settings,
    }
    database = tmp_path / "run.duckdb"
    proc, out = run(tmp_path, "experiment", DECISION_CONFIG % values, "--database", str(database))
    assert proc.returncode == exit_code, proc.stderr
    report = json.loads(out.read_text())
    decision = json.loads((tmp_path / "report.json.decision.json").read_text())
    srm_p = report["experiment"]["srm"]["global"]["p_value"]
    ctr = report["experiment"]["significance"][0]
    assert (ctr["metric"], ctr["p_value"]) == ("ctr", pytest.approx(0.38647623077123283, abs=TOL))
    # the playbook's test of ctr (the same definition, clicks per request) is per user: none here
    (user_ctr,) = [
        t
        for t in report["experiment"]["readout"]["metric_tests"]
        if t["metric"] == "ctr" and "segment" not in t
    ]
    assert (user_ctr["control_value"], user_ctr["variant_value"]) == (0.5, 0)
    assert (user_ctr["users"], user_ctr["control_users"], user_ctr["test_status"]) == (
        1,
        1,
        "zero_variance",
    )
    assert "p_value" not in user_ctr and "relative_lift_ci" not in user_ctr
    numbers = {"srm_p": srm_p}
    assert decision["verdict"] == verdict
    assert decision["reasons"] == [r % numbers for r in reasons]
    assert decision["reason"] == (decision["reasons"] or [""])[0]
    jsonschema.validate(decision, json.loads((REPO / "schemas" / "decision.v2.json").read_text()))
    assert_decision_is_the_mart_row(database, decision)


def assert_decision_is_the_mart_row(database: Path, decision: dict) -> None:
    """The decision document and the kept database's fct_experiment_decision row say the same."""
    with duckdb.connect(str(database), read_only=True) as con:
        cur = con.execute("select * from recsys_eval_marts.fct_experiment_decision")
        rows = [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur.fetchall()]
        recorded = con.execute("select verdict, reasons_json from experiment_decisions").fetchall()
    assert len(rows) == 1
    row = rows[0]
    for key in ("policy", "verdict", "decision", "reason", "control_variant", "candidate_variant"):
        assert decision[key] == row[key], key
    assert decision["reasons"] == json.loads(row["reasons_json"])
    assert recorded == [(row["verdict"], row["reasons_json"])]
    for entry in decision["primary_metrics"]:
        assert entry["delta"] == row[f"{entry['metric']}_delta"]
        assert entry["relative_delta"] == row[f"{entry['metric']}_relative_delta"]
    assert decision["guardrails"][0]["passed"] == row["pass_latency"]
    if "srm" in decision:
        assert decision["srm"]["p_value"] == row["srm_p_value"]
        assert decision["srm"]["detected"] == row["is_srm_detected"]


def test_decision_document_from_the_mart_row():
    """decide() only shapes the row: a name the marts do not know reads as 0 on both sides (§5.10),
    thresholds are echoed as configured, the SRM block only when the decision read SRM."""
    row = {
        "policy": "playbook",
        "verdict": "rollback",
        "decision": "fail",
        "reason": "guardrail breached: error_rate",
        "reasons_json": '["guardrail breached: error_rate"]',
        "control_variant": "A",
        "candidate_variant": "B",
        "ctr_delta": 0.25,
        "ctr_relative_delta": 1.0,
        "candidate_latency_p95_ms": 90.0,
        "max_latency_p95_ms": 100.0,
        "pass_latency": True,
        "candidate_error_rate": 0.5,
        "max_error_rate": 0.25,
        "pass_error_rate": False,
        "candidate_empty_rate": 0.0,
        "max_empty_rate": 0.0,
        "pass_empty_rate": True,
        "is_srm_reported": False,
        "is_srm_detected": False,
        "srm_p_value": None,
        "srm_alpha": None,
    }
    exp = {"primary_metrics": ["CTR", "Clicks"], "decision": {"primary_thresholds": {"CTR": 0.1}}}
    out = decide(row, exp)
    assert out["primary_metrics"] == [
        {"metric": "ctr", "delta": 0.25, "relative_delta": 1.0, "threshold": 0.0},
        {"metric": "clicks", "delta": 0.0, "relative_delta": 0.0, "threshold": 0.0},
    ]
    assert out["thresholds"] == {"CTR": 0.1}
    assert out["guardrails"][1] == {
        "metric": "error_rate",
        "value": 0.5,
        "threshold": 0.25,
        "passed": False,
    }
    assert "srm" not in out
    assert (out["verdict"], out["decision"], out["reasons"]) == (
        "rollback",
        "fail",
        ["guardrail breached: error_rate"],
    )
    reported = decide({**row, "is_srm_reported": True, "srm_p_value": 0.5, "srm_alpha": 0.001}, exp)
    assert reported["srm"] == {"detected": False, "p_value": 0.5, "alpha": 0.001}


def test_show_renders_the_decision_and_lifts(tmp_path):
    from recsys_eval.commands.show import render

    proc, out = run(tmp_path, "experiment", EVERYTHING % {"method": "holm", "policy": "playbook"})
    assert proc.returncode == 3, proc.stderr
    text = render(json.loads(out.read_text()))
    assert "decision: ROLLBACK (playbook policy): B vs control A" in text
    assert "- guardrail breached: latency_p95_ms (candidate 220 > max 100)" in text
    assert "B ctr              -0.5000 [-1.1930, +0.1930]  p=0.3865" in text
    assert "guardrail breach: B latency" in text
    assert "SRM: p=0.5637" in text
