"""Experiment analysis marts (reference §5): the golden report on the tiny seeds, and a planted effect.

1. The tiny seeds with the golden run's config (reference §11.3) reproduce golden/experiment.json:
   variant metrics, by_segment, significance (p-values, BH over m = 4), guardrails, to 1e-12.
2. A generated dataset with a planted effect, loaded as raw tables, is checked against independent
   computations: scipy.stats (norm, chi2, chisquare, false_discovery_control) and hand formulas for
   Holm, Bonferroni, the lift intervals, CUPED and the floor-style p95 (statsmodels is not installed).
3. Invalid vars fail compilation with a message naming the var.

Every dbt run goes to its own temporary DuckDB file and target path (tests/python/dbt_helpers.py).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
from datetime import datetime
from pathlib import Path
from unittest import mock

import duckdb
import pytest
from conftest import REFERENCE
from dbt_helpers import RAW_DDL, run_dbt
from scipy import stats

TOLERANCE = 1e-12  # the reference itself is not bit-stable (reference §2.2)

EXPERIMENT_MODELS = [
    "+fct_experiment_variant_metrics",
    "+fct_experiment_significance",
    "+fct_experiment_srm",
    "+fct_experiment_guardrails",
    "+fct_experiment_cuped",
    "assert_tiny_seeds_reproduce_golden_experiment",
]

# The golden run's config (reference §11.3): experiment exp_123, control A, primary [ctr],
# slice_keys [tenant], guardrails {latency 100, error 0, empty 0.5}, fdr_bh at 0.05.
GOLDEN_VARS = {
    "recsys_eval__experiment_id": "exp_123",
    "recsys_eval__experiment_control_variant": "A",
    "recsys_eval__experiment_primary_metrics": ["ctr"],
    "recsys_eval__experiment_slice_keys": ["tenant"],
    "recsys_eval__experiment_max_latency_p95_ms": 100,
    "recsys_eval__experiment_max_error_rate": 0,
    "recsys_eval__experiment_max_empty_rate": 0.5,
    "recsys_eval__experiment_multiple_comparisons_method": "fdr_bh",
    "recsys_eval__experiment_multiple_comparisons_alpha": 0.05,
}


def build(tmp_path: Path, name: str, dbt_vars: dict, database: Path | None = None) -> Path:
    # cautious: only the tests whose parents are all selected (not the other marts' tests)
    with mock.patch.dict(os.environ, {"DBT_INDIRECT_SELECTION": "cautious"}):
        result, database = run_dbt(tmp_path, name, "build", dbt_vars, database, EXPERIMENT_MODELS)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return database


def read_rows(database: Path, query: str) -> list[dict]:
    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(query)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def close(actual, expected, tolerance: float = TOLERANCE) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    return math.isclose(actual, expected, rel_tol=0, abs_tol=tolerance)


def close_relative(actual, expected, tolerance: float = 1e-12) -> bool:
    """For values that can be tiny (p-values) or large (chi-square): relative, with an absolute floor."""
    return math.isclose(actual, expected, rel_tol=tolerance, abs_tol=1e-300)


# -- 1. golden ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_report() -> dict:
    path = REFERENCE / "golden" / "experiment.json"
    if not path.exists():
        pytest.skip(f"reference golden {path} not available")
    return json.loads(path.read_text())["experiment"]


@pytest.fixture(scope="module")
def golden_build(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("experiment_golden"), "golden", GOLDEN_VARS)


VARIANT_FIELDS = [
    "exposures",
    "clicks",
    "conversions",
    "ctr",
    "conversion_rate",
    "revenue",
    "revenue_per_request",
]


def assert_variant_rows(rows: list[dict], expected: list[dict]) -> None:
    assert [row["variant"] for row in rows] == [item["variant"] for item in expected]
    for row, item in zip(rows, expected, strict=True):
        for field in VARIANT_FIELDS:
            assert close(row[field], item[field]), (item["variant"], field, row[field], item[field])
        # the report omits throughput_rps when it is 0
        assert close(row["throughput_rps"], item.get("throughput_rps", 0)), item["variant"]


def test_golden_variant_metrics(golden_build, golden_report):
    rows = read_rows(
        golden_build,
        "select * from recsys_eval_marts.fct_experiment_variant_metrics where scope = 'global' order by variant",
    )
    assert_variant_rows(rows, golden_report["variants"])
    assert [row["is_control"] for row in rows] == [True, False]


def test_golden_variant_metrics_by_segment(golden_build, golden_report):
    rows = read_rows(
        golden_build,
        "select * from recsys_eval_marts.fct_experiment_variant_metrics where scope = 'segment' "
        "order by segment_key, variant",
    )
    by_segment = golden_report["by_segment"]
    assert sorted({row["segment_key"] for row in rows}) == sorted(by_segment)
    for segment, expected in by_segment.items():
        assert_variant_rows([row for row in rows if row["segment_key"] == segment], expected)


def test_golden_significance(golden_build, golden_report):
    rows = read_rows(
        golden_build,
        "select * from recsys_eval_marts.fct_experiment_significance order by test_position",
    )
    expected = golden_report["significance"]
    assert len(rows) == len(expected)
    for row, item in zip(rows, expected, strict=True):
        segment = item.get("segment", "__all__")
        assert (row["segment_key"], row["variant"], row["metric"]) == (
            segment,
            item["variant"],
            item["metric"],
        )
        assert row["scope"] == ("global" if "segment" not in item else "segment")
        assert close(row["p_value"], item["p_value"]), item
        assert close(row["adjusted_p_value"], item.get("adjusted_p_value", 0)), item
        assert row["is_significant"] == item["significant"]
        assert row["is_primary"] == item["primary"]
        assert row["correction"] == item["correction"]
        assert row["test_status"] == "ok"
        assert row["family_size"] == len(expected)


def test_golden_guardrails(golden_build, golden_report):
    rows = read_rows(
        golden_build, "select * from recsys_eval_marts.fct_experiment_guardrails order by variant"
    )
    expected = golden_report["guardrails"]["per_variant"]
    assert [row["variant"] for row in rows] == [item["variant"] for item in expected]
    for row, item in zip(rows, expected, strict=True):
        for field in ["latency_p95_ms", "error_rate", "empty_rate"]:
            assert close(row[field], item[field]), (item["variant"], field)
        for field in ["pass_latency", "pass_error_rate", "pass_empty_rate"]:
            assert row[field] == item[field], (item["variant"], field)


def test_golden_srm_matches_scipy(golden_build):
    # The golden run had no SRM; the tiny assignments (A 2, B 1, equal weights) against scipy.
    rows = read_rows(
        golden_build, "select * from recsys_eval_marts.fct_experiment_srm order by variant"
    )
    expected = stats.chisquare([2, 1])
    assert [(row["variant"], row["observed_rows"]) for row in rows] == [("A", 2), ("B", 1)]
    for row in rows:
        assert row["scope"] == "global"
        assert close(row["chi_square"], expected.statistic)
        assert close(row["p_value"], expected.pvalue)
        assert row["degrees_of_freedom"] == 1
        assert row["sample_size"] == 3
        assert row["is_detected"] is False  # 3 rows < min_sample 100


def test_golden_cuped_is_off_by_default(golden_build):
    (row,) = read_rows(golden_build, "select * from recsys_eval_marts.fct_experiment_cuped")
    assert row["is_active"] is False
    assert row["assigned_exposures"] == 3
    rows = read_rows(
        golden_build, "select ctr_adjusted from recsys_eval_marts.fct_experiment_variant_metrics"
    )
    assert all(row["ctr_adjusted"] is None for row in rows)


# -- 2. planted effect ----------------------------------------------------------------------------


ITEMS_JSON_STRUCTURE = (
    '[{"item_id": "VARCHAR", "rank": "BIGINT", "propensity": "DOUBLE", '
    '"logging_propensity": "DOUBLE", "target_propensity": "DOUBLE"}]'
)

PLANTED_EXPECTED_WEIGHTS = {"A": 1, "B": 1, "C": 0.15, "D": 0.05}  # D never appears: a missing arm

PLANTED_VARS = {
    "recsys_eval__source": "raw",
    "recsys_eval__using_assignments": True,  # off on raw tables unless set
    "recsys_eval__using_rankers": False,
    "recsys_eval__experiment_id": "EXP_PLANTED",
    "recsys_eval__experiment_control_variant": "A",
    "recsys_eval__experiment_primary_metrics": ["CTR", "conversion_rate"],
    "recsys_eval__experiment_slice_keys": ["tenant"],
    "recsys_eval__srm_slice_keys": ["tenant"],
    "recsys_eval__experiment_max_latency_p95_ms": 150,
    "recsys_eval__experiment_max_error_rate": 0.02,
    "recsys_eval__experiment_max_empty_rate": 0.05,
    "recsys_eval__experiment_multiple_comparisons_method": "fdr_bh",
    "recsys_eval__experiment_multiple_comparisons_alpha": 0.05,
    "recsys_eval__experiment_ci_level": 0.9,
    "recsys_eval__experiment_srm_alpha": 0.001,
    "recsys_eval__experiment_srm_min_sample": 100,
    "recsys_eval__experiment_srm_expected": PLANTED_EXPECTED_WEIGHTS,
    "recsys_eval__experiment_cuped_covariate_key": "pre_period_ctr",
}


def generate_planted(seed: int = 20250101) -> dict:
    """Exposures, outcomes and assignments with a planted ctr effect (B +4 points) and a skewed C arm.

    Returns the raw rows plus the per-case truth (what the marts must compute) as plain Python.
    """
    rng = random.Random(seed)
    exposures, outcomes, assignments, cases = [], [], [], []
    n_requests = 4300
    for i in range(n_requests):
        request_id = f"r{i:05d}"
        variant = "A" if i < 2000 else ("B" if i < 4000 else "C")
        tenant = "t1" if i % 3 else "t2"
        propensity = rng.uniform(0.02, 0.3)
        context = {"tenant": tenant, "surface": "home" if i % 2 else "search"}
        roll = rng.random()
        if roll < 0.05:
            covariate = None  # key absent
        elif roll < 0.07:
            context["pre_period_ctr"] = "n/a"  # not a number
            covariate = None
        else:
            covariate = round(propensity + rng.gauss(0, 0.05), 6)
            context["pre_period_ctr"] = repr(covariate)
        empty = rng.random() < 0.03
        items = (
            [] if empty else [{"item_id": f"i{rng.randrange(50)}", "rank": k} for k in (1, 2, 3)]
        )
        latency = (
            None if rng.random() < 0.02 else round(rng.gauss(100 if variant == "A" else 120, 25), 3)
        )
        error = rng.random() < 0.01
        ts = f"2025-02-01 00:{(i // 60) % 60:02d}:{i % 60:02d}"
        if i >= 3600:
            ts = f"2025-02-01 01:{(i // 60) % 60:02d}:{i % 60:02d}"
        exposures.append(
            [request_id, f"u{i % 997}", ts, json.dumps(items), json.dumps(context), latency, error]
        )
        click_probability = propensity + (0.04 if variant == "B" else 0.0)
        clicks = 1 if rng.random() < click_probability else 0
        if variant == "C" and clicks and rng.random() < 0.5:
            clicks = rng.choice([2, 3])  # several clicks on one list: counts, not indicators
        conversions, revenue = 0, 0.0
        for _ in range(clicks):
            outcomes.append([request_id, "click", 1.0, ts])
            if rng.random() < 0.3:
                value = round(rng.uniform(1, 50), 2)
                outcomes.append([request_id, "Conversion", value, ts])
                conversions += 1
                revenue += value
        assignment_variant = variant
        if i % 50 == 0:
            # an earlier row with another variant: the last row wins for the metrics, SRM counts both
            assignments.append(["exp_planted", "B" if variant != "B" else "A", request_id, tenant])
        if i % 97 == 0:
            assignments.append(["other_exp", "Z", request_id, tenant])  # filtered out
        assignments.append(["Exp_Planted", assignment_variant, request_id, tenant])
        cases.append(
            {
                "request_id": request_id,
                "variant": variant,
                "tenant": tenant,
                "clicks": clicks,
                "conversions": conversions,
                "revenue": revenue,
                "covariate": covariate,
                "empty": empty,
                "latency": latency,
                "error": error,
                "ts": ts,
            }
        )
    # a duplicate exposure row of r00001 (dropped, the first wins) and assignments without exposures
    exposures.append(
        ["r00001", "u1", "2025-02-01 00:00:01", "[]", json.dumps({"tenant": "t9"}), 999.0, True]
    )
    for j in range(300):  # a leak into B: assignment rows that never got an exposure (SRM only)
        assignments.append(["exp_planted", "B", f"x{j:03d}", "t1"])
    # an exposure without assignment: not in the population
    exposures.append(
        ["unassigned", "u0", "2025-02-01 00:00:00", "[]", json.dumps({"tenant": "t1"}), 1.0, False]
    )
    # an orphan outcome
    outcomes.append(["nowhere", "click", 1.0, "2025-02-01 00:00:00"])
    return {
        "exposures": exposures,
        "outcomes": outcomes,
        "assignments": assignments,
        "cases": cases,
    }


def load_planted(database: Path, data: dict, work_dir: Path) -> None:
    files = {}
    for name, rows in [
        ("exposures", data["exposures"]),
        ("outcomes", data["outcomes"]),
        ("assignments", data["assignments"]),
    ]:
        path = work_dir / f"{name}.csv"
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
        files[name] = str(path)
    with duckdb.connect(str(database)) as connection:
        connection.execute(RAW_DDL)
        connection.execute(
            f"""
            insert into raw.exposures
            select 'planted', 1, 'exposures.jsonl', row_number() over (), column0, column1,
                cast(column2 as timestamp), from_json(column3, '{ITEMS_JSON_STRUCTURE}'),
                cast(cast(column4 as json) as map(varchar, varchar)),
                try_cast(nullif(column5, '') as double), cast(column6 as boolean)
            from read_csv('{files["exposures"]}', header = false, all_varchar = true)
            """
        )
        connection.execute(
            f"""
            insert into raw.outcomes
            select 'planted', 1, 'outcomes.jsonl', row_number() over (), column0, 'u', 'i1', column1,
                cast(column2 as double), cast(column3 as timestamp)
            from read_csv('{files["outcomes"]}', header = false, all_varchar = true)
            """
        )
        connection.execute(
            f"""
            insert into raw.assignments
            select 'planted', 1, 'assignments.jsonl', row_number() over (), column0, column1, column2, 'u',
                timestamp '2025-02-01 00:00:00', map(['tenant'], [column3])
            from read_csv('{files["assignments"]}', header = false, all_varchar = true)
            """
        )


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    work_dir = tmp_path_factory.mktemp("experiment_planted")
    data = generate_planted()
    database = work_dir / "planted.duckdb"
    load_planted(database, data, work_dir)
    build(work_dir, "planted", PLANTED_VARS, database)
    return {"database": database, "work_dir": work_dir, **data}


def truth_by_group(cases: list[dict]) -> dict:
    groups: dict[tuple, list[dict]] = {}
    for case in cases:
        groups.setdefault(("global", "__all__", case["variant"]), []).append(case)
        groups.setdefault(("segment", f"tenant={case['tenant']}", case["variant"]), []).append(case)
    return groups


def test_planted_variant_metrics(planted):
    groups = truth_by_group(planted["cases"])
    rows = read_rows(
        planted["database"], "select * from recsys_eval_marts.fct_experiment_variant_metrics"
    )
    assert {(row["scope"], row["segment_key"], row["variant"]) for row in rows} == set(groups)
    for row in rows:
        cases = groups[(row["scope"], row["segment_key"], row["variant"])]
        n = len(cases)
        assert row["exposures"] == n
        assert row["clicks"] == sum(case["clicks"] for case in cases)
        assert row["conversions"] == sum(case["conversions"] for case in cases)
        assert close(row["revenue"], sum(case["revenue"] for case in cases), 1e-9)
        assert close(row["ctr"], row["clicks"] / n)
        assert close(row["conversion_rate"], row["conversions"] / n)
        assert close(row["revenue_per_request"], row["revenue"] / n)
        times = sorted(datetime.fromisoformat(case["ts"]) for case in cases)
        span = (times[-1] - times[0]).total_seconds()
        assert close(row["throughput_rps"], n / span if span > 0 else 0.0)
        assert row["is_control"] == (row["variant"] == "A")
        assert row["has_events_above_exposures"] is False


def z_test(s1: int, n1: int, s0: int, n0: int) -> float:
    pooled = (s1 + s0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    z = (s1 / n1 - s0 / n0) / se
    return 2 * stats.norm.sf(abs(z))


def holm(p_values: list[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda index: p_values[index])
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(order, start=1):
        running = max(running, min(1.0, (m - rank + 1) * p_values[index]))
        adjusted[index] = running
    return adjusted


def test_planted_significance_matches_scipy(planted):
    groups = truth_by_group(planted["cases"])
    rows = read_rows(
        planted["database"],
        "select * from recsys_eval_marts.fct_experiment_significance order by test_position",
    )
    tests = [(row["scope"], row["segment_key"], row["variant"], row["metric"]) for row in rows]
    assert tests == [
        ("global", "__all__", "B", "ctr"),
        ("global", "__all__", "B", "conversion_rate"),
        ("global", "__all__", "C", "ctr"),
        ("global", "__all__", "C", "conversion_rate"),
        ("segment", "tenant=t1", "B", "ctr"),
        ("segment", "tenant=t1", "B", "conversion_rate"),
        ("segment", "tenant=t1", "C", "ctr"),
        ("segment", "tenant=t1", "C", "conversion_rate"),
        ("segment", "tenant=t2", "B", "ctr"),
        ("segment", "tenant=t2", "B", "conversion_rate"),
        ("segment", "tenant=t2", "C", "ctr"),
        ("segment", "tenant=t2", "C", "conversion_rate"),
    ]
    z_critical = stats.norm.ppf(0.95)  # ci_level 0.9
    p_values = []
    for row in rows:
        field = "clicks" if row["metric"] == "ctr" else "conversions"
        variant = groups[(row["scope"], row["segment_key"], row["variant"])]
        control = groups[(row["scope"], row["segment_key"], "A")]
        y1 = [case[field] for case in variant]
        y0 = [case[field] for case in control]
        s1, n1, s0, n0 = sum(y1), len(y1), sum(y0), len(y0)
        expected_p = z_test(s1, n1, s0, n0)
        assert close(row["p_value"], expected_p), row
        p_values.append(expected_p)
        assert row["test_status"] == "ok"
        assert row["is_primary"] is True
        # lift intervals: unpooled per-request variance (population moments), delta method
        r1, r0 = s1 / n1, s0 / n0
        v1 = sum((y - r1) ** 2 for y in y1) / n1
        v0 = sum((y - r0) ** 2 for y in y0) / n0
        se = math.sqrt(v1 / n1 + v0 / n0)
        assert close(row["absolute_lift"], r1 - r0)
        assert close(row["absolute_lift_standard_error"], se)
        assert close(row["absolute_lift_ci_lower"], r1 - r0 - z_critical * se)
        assert close(row["absolute_lift_ci_upper"], r1 - r0 + z_critical * se)
        relative_se = math.sqrt(v1 / n1 / r0**2 + r1**2 * v0 / n0 / r0**4)
        assert close(row["relative_lift"], r1 / r0 - 1)
        assert close(row["relative_lift_standard_error"], relative_se)
        assert close(row["relative_lift_ci_lower"], r1 / r0 - 1 - z_critical * relative_se)
        assert close(row["relative_lift_ci_upper"], r1 / r0 - 1 + z_critical * relative_se)
    # BH over the whole family (global and segments): scipy's false_discovery_control
    bh = stats.false_discovery_control(p_values, method="bh")
    for row, expected in zip(rows, bh, strict=True):
        assert close(row["adjusted_p_value"], expected), row
        assert row["is_significant"] == (expected <= 0.05)
        assert row["family_size"] == len(rows)
    # the planted effect is found: B's global ctr is significant after correction
    assert rows[0]["is_significant"] is True and rows[0]["absolute_lift_ci_lower"] > 0


@pytest.mark.parametrize("method", ["holm", "bonferroni", "none"])
def test_planted_other_corrections(planted, method):
    database = planted["work_dir"] / f"planted_{method}.duckdb"
    shutil.copy(planted["database"], database)
    result, _ = run_dbt(
        planted["work_dir"],
        f"planted_{method}",
        "run",
        {**PLANTED_VARS, "recsys_eval__experiment_multiple_comparisons_method": method},
        database,
        ["fct_experiment_significance"],
    )
    assert result.returncode == 0, result.stdout[-4000:]
    rows = read_rows(
        database,
        "select * from recsys_eval_marts.fct_experiment_significance order by test_position",
    )
    p_values = [row["p_value"] for row in rows]  # checked against scipy above
    m = len(p_values)
    expected = {
        "holm": holm(p_values),
        "bonferroni": [min(1.0, p * m) for p in p_values],
        "none": p_values,
    }[method]
    for row, value in zip(rows, expected, strict=True):
        assert row["correction"] == method
        assert close(row["adjusted_p_value"], value), row


def test_planted_srm_matches_scipy(planted):
    rows = read_rows(
        planted["database"],
        "select * from recsys_eval_marts.fct_experiment_srm order by scope, segment_key, variant",
    )
    # the SRM population: assignment rows of the experiment (case-insensitive), duplicates counted
    observed: dict[tuple, dict[str, int]] = {}
    for experiment_id, variant, _request_id, tenant in planted["assignments"]:
        if experiment_id.lower() != "exp_planted":
            continue
        for scope, segment in [("global", "__all__"), ("segment", f"tenant={tenant}")]:
            counts = observed.setdefault((scope, segment), {})
            counts[variant] = counts.get(variant, 0) + 1
    assert {(row["scope"], row["segment_key"]) for row in rows} == set(observed)
    total_weight = sum(PLANTED_EXPECTED_WEIGHTS.values())
    for (scope, segment), counts in observed.items():
        population = {
            row["variant"]: row
            for row in rows
            if (row["scope"], row["segment_key"]) == (scope, segment)
        }
        assert set(population) == set(counts) | set(PLANTED_EXPECTED_WEIGHTS)
        n = sum(counts.values())
        expected_counts = {v: w / total_weight * n for v, w in PLANTED_EXPECTED_WEIGHTS.items()}
        statistic = sum((counts[v] - expected_counts[v]) ** 2 / expected_counts[v] for v in counts)
        df = len(counts) - 1
        p_value = stats.chi2.sf(statistic, df)
        for variant, row in population.items():
            assert row["observed_rows"] == counts.get(variant, 0)
            assert close(row["expected_rows"], expected_counts[variant], 1e-9)
            assert close_relative(row["chi_square"], statistic)
            assert row["degrees_of_freedom"] == df
            assert close_relative(row["p_value"], p_value, 1e-9)
            assert row["is_detected"] == (n >= 100 and p_value < 0.001)
            assert row["is_expected_arm_missing"] == (variant == "D")
            assert row["has_expected_arm_missing"] is True
            assert row["has_unexpected_variant"] is False
    # the planted leak (300 extra B rows) is detected globally
    global_rows = {row["variant"]: row for row in rows if row["scope"] == "global"}
    assert global_rows["A"]["is_detected"] is True


def test_planted_srm_equal_weights_matches_scipy_chisquare(planted):
    database = planted["work_dir"] / "planted_srm_equal.duckdb"
    shutil.copy(planted["database"], database)
    result, _ = run_dbt(
        planted["work_dir"],
        "planted_srm_equal",
        "run",
        {**PLANTED_VARS, "recsys_eval__experiment_srm_expected": {}},
        database,
        ["fct_experiment_srm"],
    )
    assert result.returncode == 0, result.stdout[-4000:]
    rows = read_rows(
        database,
        "select * from recsys_eval_marts.fct_experiment_srm where scope = 'global' order by variant",
    )
    expected = stats.chisquare([row["observed_rows"] for row in rows])
    for row in rows:
        assert close_relative(row["chi_square"], expected.statistic)
        assert close_relative(row["p_value"], expected.pvalue, 1e-9)


def test_planted_guardrails(planted):
    rows = read_rows(
        planted["database"],
        "select * from recsys_eval_marts.fct_experiment_guardrails order by variant",
    )
    by_variant: dict[str, list[dict]] = {}
    for case in planted["cases"]:
        by_variant.setdefault(case["variant"], []).append(case)
    assert [row["variant"] for row in rows] == sorted(by_variant)
    for row in rows:
        cases = by_variant[row["variant"]]
        latencies = sorted(case["latency"] for case in cases if case["latency"] is not None)
        p95 = latencies[math.floor(0.95 * (len(latencies) - 1))]
        error_rate = sum(case["error"] for case in cases) / len(cases)
        empty_rate = sum(case["empty"] for case in cases) / len(cases)
        assert close(row["latency_p95_ms"], p95)
        assert close(row["error_rate"], error_rate)
        assert close(row["empty_rate"], empty_rate)
        assert row["pass_latency"] == (p95 <= 150)
        assert row["pass_error_rate"] == (error_rate <= 0.02)
        assert row["pass_empty_rate"] == (empty_rate <= 0.05)


def test_planted_cuped(planted):
    cases = planted["cases"]
    with_covariate = [case for case in cases if case["covariate"] is not None]
    n = len(with_covariate)
    x = [case["covariate"] for case in with_covariate]
    mean_x = sum(x) / n
    variance = sum((value - mean_x) ** 2 for value in x) / n
    (row,) = read_rows(planted["database"], "select * from recsys_eval_marts.fct_experiment_cuped")
    assert row["is_active"] is True
    assert row["covariate_exposures"] == n
    assert close(row["coverage_rate"], n / len(cases))
    thetas = {}
    for field, column in [("clicks", "theta_ctr"), ("conversions", "theta_conversion_rate")]:
        y = [1 if case[field] > 0 else 0 for case in with_covariate]
        mean_y = sum(y) / n
        covariance = sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True)) / n
        thetas[field] = covariance / variance
        assert close(row[column], thetas[field]), column
    groups = truth_by_group(cases)
    metrics = read_rows(
        planted["database"], "select * from recsys_eval_marts.fct_experiment_variant_metrics"
    )
    for metric in metrics:
        group = [
            case
            for case in groups[(metric["scope"], metric["segment_key"], metric["variant"])]
            if case["covariate"] is not None
        ]
        group_mean_x = sum(case["covariate"] for case in group) / len(group)
        clicked = sum(1 for case in group if case["clicks"] > 0) / len(group)
        converted = sum(1 for case in group if case["conversions"] > 0) / len(group)
        assert close(metric["ctr_adjusted"], clicked - thetas["clicks"] * (group_mean_x - mean_x))
        assert close(
            metric["conversion_rate_adjusted"],
            converted - thetas["conversions"] * (group_mean_x - mean_x),
        )


# -- 3. var validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        (
            {"recsys_eval__experiment_multiple_comparisons_method": "sidak"},
            "must be one of fdr_bh, bonferroni, holm, none",
        ),
        (
            {"recsys_eval__experiment_srm_expected": {"A": "half"}},
            "the weight of variant 'A' must be a number",
        ),
        (
            {"recsys_eval__experiment_srm_alpha": 1.5},
            "recsys_eval__experiment_srm_alpha must be in (0, 1)",
        ),
        ({"recsys_eval__experiment_primary_metrics": ["ndcg"]}, "unknown metric 'ndcg'"),
    ],
)
def test_invalid_vars_fail_compilation(tmp_path, dbt_vars, message):
    result, _ = run_dbt(
        tmp_path,
        "invalid",
        "compile",
        dbt_vars,
        select=["fct_experiment_srm", "fct_experiment_significance"],
    )
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
