"""Offline options beyond the reference: bootstrap intervals, outcomes that follow their exposure,
and the CLI keys that turn on the trec dialect, graded relevance and the bootstrap.

The bootstrap is checked against an independent Python implementation (bootstrap_reference.py:
hashlib md5, no SQL) to 1e-12, and statistically: on generated data its interval is close to the
normal-theory interval of the mean.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import bootstrap_reference
import duckdb
import pytest
from dbt_helpers import REPO_ROOT, run_dbt
from test_offline_dialects import generate

from recsys_eval.loader import ensure_raw_schema, load_file

RAW_VARS = {
    "recsys_eval__source": "raw",
    "recsys_eval__using_assignments": False,
    "recsys_eval__using_rankers": False,
}
METRICS = [{"name": f, "k": 5} for f in ["precision", "recall", "map", "ndcg", "hitrate", "mrr"]]


def build_generated(tmp_path: Path, dbt_vars: dict) -> Path:
    generate(tmp_path, n_requests=400, seed=11)
    database = tmp_path / "generated.duckdb"
    with duckdb.connect(str(database)) as connection:
        ensure_raw_schema(connection)
        load_file(connection, "exposure.v1", tmp_path / "exposures.jsonl", table="exposures")
        load_file(connection, "outcome.v1", tmp_path / "outcomes.jsonl", table="outcomes")
    result, _ = run_dbt(
        tmp_path,
        "generated",
        "run",
        {**RAW_VARS, "recsys_eval__offline_metrics": METRICS, **dbt_vars},
        database,
        select=["+fct_offline_metric_intervals"],
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return database


def test_bootstrap_matches_independent_implementation(tmp_path):
    boot = {"enabled": True, "iterations": 300, "seed": 7, "ci_level": 0.9}
    database = build_generated(tmp_path, {"recsys_eval__offline_bootstrap": boot})
    with duckdb.connect(str(database), read_only=True) as connection:
        per_request = connection.execute(
            "select metric_name, request_id, metric_value from recsys_eval_marts.fct_offline_request_metrics"
        ).fetchall()
        intervals = connection.execute(
            "select metric_name, metric_value, cases, ci_lower, ci_upper, ci_level, replicates, seed "
            "from recsys_eval_marts.fct_offline_metric_intervals where scope = 'global'"
        ).fetchall()
    values: dict[str, dict[str, float]] = {}
    for name, request_id, value in per_request:
        values.setdefault(name, {})[request_id] = value
    assert len(intervals) == len(METRICS)
    for name, point, cases, lower, upper, level, replicates, seed in intervals:
        expected_lower, expected_upper, used = bootstrap_reference.interval(
            values[name], iterations=300, seed=7, level=0.9
        )
        assert (level, seed, cases) == (0.9, 7, 400)
        assert replicates == used == 300  # with 400 cases no replicate draws nothing
        assert math.isclose(lower, expected_lower, abs_tol=1e-12), name
        assert math.isclose(upper, expected_upper, abs_tol=1e-12), name
        # a sensible interval: around the point estimate, close to the normal-theory one
        xs = list(values[name].values())
        half = 1.6448536269514722 * statistics.pstdev(xs) / math.sqrt(len(xs))
        assert lower < point < upper, name
        assert (upper - lower) == pytest.approx(2 * half, rel=0.25), name


def test_bootstrap_off_builds_an_empty_mart_and_seed_changes_draws(tmp_path):
    database = build_generated(tmp_path, {})
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute(
            "select count(*) from recsys_eval_marts.fct_offline_metric_intervals"
        ).fetchone() == (0,)
    a = bootstrap_reference.interval({f"r{i}": i % 3 for i in range(50)}, seed=1)
    b = bootstrap_reference.interval({f"r{i}": i % 3 for i in range(50)}, seed=2)
    assert a != b


def test_outcomes_follow_exposure_keeps_late_outcomes(tmp_path):
    """Tiny data, test window 00:00:00-00:01:00: r2's conversion at 00:01:20 is dropped by the
    reference (recall@3 = (1 + 0) / 2) and kept when outcomes follow their exposure (1)."""
    window = {
        "recsys_eval__offline_metrics": [{"name": "recall", "k": 3}],
        "recsys_eval__test_window_start": "2025-01-01T00:00:00Z",
        "recsys_eval__test_window_end": "2025-01-01T00:01:00Z",
    }
    recalls = {}
    for follow in (False, True):
        name = f"follow_{follow}".lower()
        result, database = run_dbt(
            tmp_path,
            name,
            "build",
            {**window, "recsys_eval__outcomes_follow_exposure": follow},
            select=["+fct_offline_metrics"],
            extra=["--indirect-selection", "cautious"],
        )
        assert result.returncode == 0, result.stdout[-3000:]
        with duckdb.connect(str(database), read_only=True) as connection:
            recalls[follow] = connection.execute(
                "select metric_value, cases from recsys_eval_marts.fct_offline_metrics where scope = 'global'"
            ).fetchone()
    assert recalls[False] == (0.5, 2)
    assert recalls[True] == (1.0, 2)


def run_cli(tmp_path: Path, config: str, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "eval.yaml").write_text(config)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys_eval.cli",
            "run",
            "--mode",
            "offline",
            "--dataset",
            str(REPO_ROOT / "configs" / "dataset.tiny.yaml"),
            "--config",
            str(tmp_path / "eval.yaml"),
            "--output",
            str(tmp_path / "report.json"),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )


def test_cli_trec_graded_bootstrap_report(tmp_path):
    config = """
mode: offline
offline:
  dialect: trec
  relevance: {grade: event, gains: {click: 1, conversion: 3}}
  metrics: [{name: ndcg, k: 3}, {name: precision, k: 3}]
  bootstrap: {enabled: true, iterations: 100, seed: 5, ci_level: 0.9}
"""
    proc = run_cli(tmp_path, config)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    offline = report["offline"]
    assert offline["dialect"] == "trec"
    assert offline["relevance"] == {"grade": "event", "gains": {"click": 1, "conversion": 3}}
    metrics = {m["name"]: m for m in offline["metrics"]}
    # trec: r3 (no outcome) is not evaluated; r1 [i1*, i2, i3] R={i1}; r2 [i2, i3, i4*] R={i4} (gain 3)
    assert metrics["precision@3"]["value"] == pytest.approx((1 / 3 + 1 / 3) / 2, abs=1e-12)
    assert metrics["ndcg@3"]["value"] == pytest.approx((1 + 0.5) / 2, abs=1e-12)
    ci = metrics["ndcg@3"]["ci"]
    assert ci["level"] == 0.9 and ci["lower"] <= metrics["ndcg@3"]["value"] <= ci["upper"]


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("dialect: trek", "offline.dialect: must be reference or trec"),
        ("relevance: {grade: stars}", "offline.relevance.grade: must be binary, event, value"),
        ("relevance: {gains: {purchase: 2}}", "offline.relevance.gains.purchase: unknown event"),
        ("relevance: {gains: {click: -1}}", "offline.relevance.gains.click: must be >= 0"),
        ("relevance: {gains: {click: high}}", "offline.relevance.gains.click"),
    ],
)
def test_cli_rejects_bad_offline_options(tmp_path, snippet, message):
    config = f"mode: offline\noffline:\n  metrics: [{{name: ndcg, k: 3}}]\n  {snippet}\n"
    proc = run_cli(tmp_path, config)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert not (tmp_path / "report.json").exists()


def test_singular_bootstrap_test_constants_come_from_the_python_implementation():
    """tests/dbt/assert_offline_bootstrap_matches_python.sql hard-codes what the independent
    hashlib implementation gives on the tiny seeds; this keeps the two in step."""
    sql = (REPO_ROOT / "tests" / "dbt" / "assert_offline_bootstrap_matches_python.sql").read_text()
    hard_coded = {
        request_id: int(total)
        for request_id, total in re.findall(r"select '(r\d)'(?: as request_id)?, (\d+)", sql)
    }
    assert hard_coded == {
        request_id: sum(bootstrap_reference.weight(42, request_id, r) for r in range(1, 201))
        for request_id in ("r1", "r2", "r3")
    }
    # tiny precision@10: r1 1/3, r2 1/3, r3 0 (reference §11.6 a)
    lower, upper, used = bootstrap_reference.interval({"r1": 1 / 3, "r2": 1 / 3, "r3": 0.0})
    assert (lower, upper, used) == (0.0, 1 / 3, 189)
    assert "intervals.replicates != 189" in sql
