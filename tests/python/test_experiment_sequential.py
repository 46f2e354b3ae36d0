"""Safe to peek and lift over time (issue 20 items 5, 6), cross-checked against gbstats and ssrm-test.

A generated 10-day experiment (users arrive on a random day and come back; arm C over-allocated
against the expected 45/45/10 split, so the sequential SRM gathers evidence) is loaded as raw tables
and the over-time marts are built once. Then:

1. fct_experiment_over_time's cumulative rates, delta-method variances, lifts and fixed-horizon
   intervals equal a numpy computation from the per-user cumulative tallies (not the SQL's
   increment trick), and its last bucket equals fct_experiment_significance's user-level numbers.
2. Its always-valid intervals and p-values equal gbstats 0.8.0 SequentialTwoSidedTTest (absolute and
   relative) on the same means and variances to 1e-9, and its per-unit variance is gbstats'
   RatioStatistic variance times (n - 1) / n (population vs sample moments).
3. fct_experiment_sequential_srm equals ssrm-test 0.1.5 sequential_p_values / log Bayes factors on
   the per-day new units to 1e-9.
4. The Spark (default) log-gamma matches scipy; the hour and week buckets match Python's datetime.
5. Simulation: 1,000 A/A experiments looked at every day for 14 days; the fixed-horizon test rejects
   in far more than alpha of them, the always-valid p-value (the SQL macro) in fewer than alpha.

gbstats and ssrm-test pin numpy < 2, so they run in .venv-stats-peers (scripts/setup_stats_peers)
through tests/python/stats_peers_reference.py.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import duckdb
import numpy as np
import pytest
from dbt_helpers import REPO_ROOT, run_dbt
from scipy import special
from test_experiment_models import load_planted, read_rows

PEERS_PYTHON = REPO_ROOT / ".venv-stats-peers" / "bin" / "python"
PEERS_SCRIPT = Path(__file__).with_name("stats_peers_reference.py")
DBT_BIN = Path(sys.executable).with_name("dbt")
TOL = 1e-9
ALPHA = 0.05
TUNING = 2000.0
CONCENTRATION = 5000.0
DAYS = 10
START = datetime(2025, 3, 1, tzinfo=UTC)
EXPECTED = {"A": 0.45, "B": 0.45, "C": 0.10}
ALLOCATION = {"A": 0.43, "B": 0.43, "C": 0.14}
MODELS = [
    "+fct_experiment_over_time",
    "+fct_experiment_sequential_srm",
    "+fct_experiment_significance",
]
VARS = {
    "recsys_eval__source": "raw",
    "recsys_eval__using_assignments": True,
    "recsys_eval__using_rankers": False,
    "recsys_eval__experiment_id": "exp_days",
    "recsys_eval__experiment_control_variant": "A",
    "recsys_eval__experiment_multiple_comparisons_alpha": ALPHA,
    "recsys_eval__experiment_ci_level": 0.95,
    "recsys_eval__experiment_srm_expected": EXPECTED,
    "recsys_eval__experiment_sequential_tuning_parameter": TUNING,
    "recsys_eval__experiment_sequential_srm_concentration": CONCENTRATION,
    "recsys_eval__experiment_over_time_bucket": "day",
}


def _peers_python() -> Path:
    if not PEERS_PYTHON.exists():
        pytest.fail(
            f"{PEERS_PYTHON} is missing: run scripts/setup_stats_peers (gbstats 0.8.0, ssrm-test 0.1.5)"
        )
    return PEERS_PYTHON


def ask_peers(request: dict) -> dict:
    result = subprocess.run(
        [str(_peers_python()), str(PEERS_SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout)
    assert answer["versions"] == {"gbstats": "0.8.0", "ssrm-test": "0.1.5"}
    return answer


def generate(seed: int = 5) -> dict:
    rng = random.Random(seed)
    exposures, outcomes, assignments, cases = [], [], [], []
    number = 0
    for user_index in range(1500):
        user_id = f"u{user_index:05d}"
        roll = rng.random()
        variant = (
            "A"
            if roll < ALLOCATION["A"]
            else ("B" if roll < ALLOCATION["A"] + ALLOCATION["B"] else "C")
        )
        propensity = 0.02 + 0.4 * rng.random() ** 3
        day = rng.randrange(DAYS)
        while day < DAYS:
            for _ in range(rng.randint(1, 4)):
                request_id = f"r{number:06d}"
                number += 1
                stamp = START + timedelta(days=day, seconds=rng.randrange(86400))
                ts = stamp.strftime("%Y-%m-%d %H:%M:%S")
                exposures.append(
                    [
                        request_id,
                        user_id,
                        ts,
                        json.dumps([{"item_id": "i1", "rank": 1}]),
                        "{}",
                        50.0,
                        False,
                    ]
                )
                clicks = 0
                if rng.random() < min(1.0, propensity + (0.03 if variant == "B" else 0.0)):
                    clicks = 2 if rng.random() < 0.2 else 1
                conversions = 0
                for _ in range(clicks):
                    outcomes.append([request_id, "click", 1.0, ts])
                    if rng.random() < 0.3:
                        outcomes.append([request_id, "conversion", 3.0, ts])
                        conversions += 1
                assignments.append(["exp_days", variant, request_id, "t1"])
                cases.append(
                    {
                        "user": user_id,
                        "variant": variant,
                        "day": day,
                        "clicks": clicks,
                        "conversions": conversions,
                    }
                )
            day += rng.randint(1, 4)
    return {
        "exposures": exposures,
        "outcomes": outcomes,
        "assignments": assignments,
        "cases": cases,
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    work_dir = tmp_path_factory.mktemp("experiment_sequential")
    data = generate()
    database = work_dir / "sequential.duckdb"
    load_planted(database, data, work_dir)
    with mock.patch.dict(os.environ, {"DBT_INDIRECT_SELECTION": "cautious"}):
        result, _ = run_dbt(work_dir, "sequential", "build", VARS, database, MODELS)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return {"database": database, **data}


def hand_cumulative(cases: list[dict]) -> dict:
    """(variant, metric, day index 1..DAYS) -> units, exposures, events, rate, per-unit variance."""
    out = {}
    for variant in EXPECTED:
        for metric, field in (("ctr", "clicks"), ("conversion_rate", "conversions")):
            for day in range(DAYS):
                per_user: dict[str, list[float]] = {}
                for case in cases:
                    if case["variant"] == variant and case["day"] <= day:
                        tally = per_user.setdefault(case["user"], [0.0, 0.0])
                        tally[0] += 1
                        tally[1] += case[field]
                d = np.array([t[0] for t in per_user.values()])
                e = np.array([t[1] for t in per_user.values()])
                n = len(d)
                rate = e.sum() / d.sum() if n else 0.0
                variance = n * ((e - rate * d) ** 2).sum() / d.sum() ** 2 if n else None
                out[(variant, metric, day + 1)] = {
                    "units": n, "exposures": int(d.sum()), "events": int(e.sum()), "rate": rate,
                    "unit_variance": variance, "d": d, "e": e,
                }  # fmt: skip
    return out


def close(actual: float | None, expected: float | None, tolerance: float = TOL) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    return math.isclose(actual, expected, rel_tol=tolerance, abs_tol=1e-12)


def test_over_time_matches_numpy_and_the_significance_mart(built):
    rows = read_rows(built["database"], "select * from recsys_eval_marts.fct_experiment_over_time")
    assert len(rows) == len(EXPECTED) * 2 * DAYS  # every day has requests here
    hand = hand_cumulative(built["cases"])
    z = 1.959963984540054
    for row in rows:
        h = hand[(row["variant"], row["metric"], row["bucket_index"])]
        assert row["bucket_start"] == (START + timedelta(days=row["bucket_index"] - 1)).replace(
            tzinfo=None
        )
        assert (row["units"], row["exposures"], row["events"]) == (
            h["units"],
            h["exposures"],
            h["events"],
        )
        assert close(row["rate"], h["rate"])
        assert close(row["rate_variance"], h["unit_variance"] / h["units"])
        if row["is_control"]:
            assert row["absolute_lift"] is None
            continue
        c = hand[("A", row["metric"], row["bucket_index"])]
        se = math.sqrt(h["unit_variance"] / h["units"] + c["unit_variance"] / c["units"])
        assert close(row["absolute_lift"], h["rate"] - c["rate"])
        assert close(row["absolute_lift_standard_error"], se)
        assert close(row["absolute_lift_ci_lower"], h["rate"] - c["rate"] - z * se)
        assert close(
            row["p_value"], math.erfc(abs(h["rate"] - c["rate"]) / se / math.sqrt(2)), 1e-7
        )
    last = {(r["variant"], r["metric"]): r for r in rows if r["bucket_index"] == DAYS}
    significance = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_significance where scope = 'global'",
    )
    assert significance
    for s in significance:
        r = last[(s["variant"], s["metric"])]
        assert close(r["absolute_lift"], s["absolute_lift"])
        assert close(r["absolute_lift_ci_lower"], s["user_absolute_lift_ci_lower"])
        assert close(r["relative_lift_ci_upper"], s["user_relative_lift_ci_upper"])
        assert close(r["p_value"], s["user_p_value"], 1e-7)


def test_always_valid_intervals_match_gbstats(built):
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_over_time order by metric, bucket_index, variant",
    )
    by_key = {(r["variant"], r["metric"], r["bucket_index"]): r for r in rows}
    lifts, tested = [], []
    for r in rows:
        if r["is_control"]:
            continue
        c = by_key[("A", r["metric"], r["bucket_index"])]
        lifts.append(
            {
                "control": {
                    "mean": c["rate"],
                    "variance": c["rate_variance"] * c["units"],
                    "n": c["units"],
                },
                "variant": {
                    "mean": r["rate"],
                    "variance": r["rate_variance"] * r["units"],
                    "n": r["units"],
                },
            }
        )
        tested.append(r)
    hand = hand_cumulative(built["cases"])
    ratios = []
    for key in (("B", "ctr", DAYS), ("C", "conversion_rate", 3)):
        d, e = hand[key]["d"], hand[key]["e"]
        ratios.append(
            {"n": len(d), "m_sum": e.sum(), "m_sum_squares": (e * e).sum(), "d_sum": d.sum(),
             "d_sum_squares": (d * d).sum(), "m_d_sum_of_products": (e * d).sum()}
        )  # fmt: skip
    answer = ask_peers(
        {"alpha": ALPHA, "tuning_parameter": TUNING, "lifts": lifts, "ratios": ratios}
    )
    assert any(r["sequential_p_value"] < 1 for r in tested)  # not only the trivial cap
    for row, peer in zip(tested, answer["lifts"], strict=True):
        assert row["sequential_tuning_parameter"] == TUNING
        for kind in ("absolute", "relative"):
            lower, upper = peer[kind]["ci"]
            assert close(row[f"{kind}_lift_sequential_ci_lower"], lower), (row, peer)
            assert close(row[f"{kind}_lift_sequential_ci_upper"], upper), (row, peer)
        assert close(row["sequential_p_value"], peer["absolute"]["p_value"]), (row, peer)
        # the always-valid interval is wider than the fixed-horizon one
        assert row["absolute_lift_sequential_ci_lower"] < row["absolute_lift_ci_lower"]
    for key, variance in zip(
        (("B", "ctr", DAYS), ("C", "conversion_rate", 3)), answer["ratio_variances"], strict=True
    ):
        n = hand[key]["units"]
        assert close(by_key[key]["rate_variance"] * n, variance * (n - 1) / n)


def test_sequential_srm_matches_ssrm_test(built):
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_sequential_srm order by bucket_index",
    )
    assert [r["bucket_index"] for r in rows] == list(range(1, DAYS + 1))
    arms = list(EXPECTED)
    first_day: dict[str, tuple[str, int]] = {}
    for case in built["cases"]:
        if case["user"] not in first_day or case["day"] < first_day[case["user"]][1]:
            first_day[case["user"]] = (case["variant"], case["day"])
    data = [[0] * len(arms) for _ in range(DAYS)]
    for variant, day in first_day.values():
        data[day][arms.index(variant)] += 1
    total = sum(EXPECTED.values())
    answer = ask_peers(
        {
            "alpha": ALPHA,
            "tuning_parameter": TUNING,
            "srm": {
                "data": data,
                "null_probabilities": [EXPECTED[a] / total for a in arms],
                "concentration": CONCENTRATION,
            },
        }
    )
    p_values = [r["sequential_p_value"] for r in rows]
    assert p_values[0] > 0.5 and p_values[-1] < ALPHA  # the evidence grows over the days
    for row, p, log_bf in zip(
        rows, answer["srm"]["p_values"], answer["srm"]["log_bayes_factors"], strict=True
    ):
        assert close(row["sequential_p_value"], p), (row, p)
        assert math.isclose(row["log_bayes_factor"], log_bf, rel_tol=0, abs_tol=TOL), (row, log_bf)
        assert row["dirichlet_concentration"] == CONCENTRATION


# -- macros evaluated directly (no build) ------------------------------------------------------------

MACRO_CALLS = {
    "log_gamma_default": "recsys_eval.default__experiment_log_gamma('x')",
    "bucket_hour": "recsys_eval.experiment_bucket_start_epoch_us('us', 'hour')",
    "bucket_week": "recsys_eval.experiment_bucket_start_epoch_us('us', 'week')",
    "cs_p_value": "recsys_eval.experiment_cs_p_value('lift', 'se', 'n', 'alpha', 'tuning')",
    "cs_half_width": "recsys_eval.experiment_cs_half_width('se', 'n', 'alpha', 'tuning')",
    "normal_p_value": "recsys_eval.normal_two_sided_p_value('lift / se')",
}
MARKER = re.compile(r"^-- @@(\w+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def macros(tmp_path_factory) -> dict[str, str]:
    """Every macro rendered by one `dbt compile --inline` (DuckDB target), name -> SQL expression."""
    tmp_path = tmp_path_factory.mktemp("sequential_macros")
    inline = "select\n" + "".join(
        f"-- @@{name}\n{{{{ {call} }}}}\n" for name, call in MACRO_CALLS.items()
    )
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(REPO_ROOT),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "RECSYS_EVAL_DUCKDB_PATH": str(tmp_path / "macros.duckdb"),
    }
    command = [
        str(DBT_BIN), "--quiet", "--no-populate-cache", "compile", "--target", "duckdb",
        "--project-dir", str(REPO_ROOT), "--target-path", str(tmp_path / "target"),
        "--log-path", str(tmp_path / "logs"), "--inline", inline,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    parts = MARKER.split(result.stdout)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_default_log_gamma_matches_scipy(macros):
    grid = np.concatenate([np.linspace(1e-3, 10, 400), np.geomspace(10, 1e9, 200)])
    with duckdb.connect() as con:
        con.execute("create table g as select unnest(?) as x", [[float(x) for x in grid]])
        ours = np.array(
            [
                r[0]
                for r in con.execute(
                    f"select {macros['log_gamma_default']} from g order by x"
                ).fetchall()
            ]
        )
    expected = special.gammaln(np.sort(grid))
    assert np.all(np.abs(ours - expected) <= 1e-9 * np.maximum(1.0, np.abs(expected)))


def test_hour_and_week_buckets(macros):
    stamps = [datetime(2025, 3, 2, 23, 59, 59, tzinfo=UTC), datetime(2025, 3, 3, 0, 0, tzinfo=UTC),
              datetime(1969, 12, 31, 13, 30, tzinfo=UTC), datetime(2024, 2, 29, 7, 15, 1, tzinfo=UTC)]  # fmt: skip
    with duckdb.connect() as con:
        con.execute("create table g (us bigint)")
        con.executemany(
            "insert into g values (?)", [[int(s.timestamp()) * 1_000_000] for s in stamps]
        )
        got = con.execute(
            f"select {macros['bucket_hour']}, {macros['bucket_week']} from g"
        ).fetchall()
    for stamp, (hour, week) in zip(stamps, got, strict=True):
        hour_start = stamp.replace(minute=0, second=0)
        monday = (stamp - timedelta(days=stamp.weekday())).replace(hour=0, minute=0, second=0)
        assert hour == int(hour_start.timestamp()) * 1_000_000
        assert week == int(monday.timestamp()) * 1_000_000


def test_peeking_every_day_keeps_type_one_error_below_alpha_only_with_the_sequential_test(macros):
    """1,000 A/A experiments, 14 daily looks at the cumulative conversion share (Bernoulli per unit,
    150 new units per arm per day): the share of experiments with p < alpha on any day."""
    rng = np.random.default_rng(20)
    experiments, days, per_day, rate = 1000, 14, 150, 0.1
    arms = rng.random((2, experiments, days, per_day)) < rate
    successes = arms.sum(axis=3).cumsum(axis=2)  # (arm, experiment, day)
    n = per_day * np.arange(1, days + 1)
    p = successes / n
    variance = p * (1 - p)  # per unit
    lift = p[1] - p[0]
    se = np.sqrt(variance[1] / n + variance[0] / n)
    columns = [
        lift.ravel().tolist(),
        se.ravel().tolist(),
        np.tile(2 * n, experiments).tolist(),
        np.repeat(np.arange(experiments), days).tolist(),
        np.tile(np.arange(days), experiments).tolist(),
    ]
    with duckdb.connect() as con:
        con.execute(
            f"create table g as select unnest(?) as lift, unnest(?) as se, unnest(?) as n, unnest(?) as e, "
            f"unnest(?) as d, {ALPHA} as alpha, 5000.0e0 as tuning",
            columns,
        )
        fixed_any, sequential_any, fixed_last = con.execute(
            f"""
            select
                avg(case when fixed_min < {ALPHA} then 1.0 else 0.0 end),
                avg(case when sequential_min < {ALPHA} then 1.0 else 0.0 end),
                avg(case when fixed_last < {ALPHA} then 1.0 else 0.0 end)
            from (
                select e, min(fixed) as fixed_min, min(sequential) as sequential_min,
                    min(case when d = {days - 1} then fixed end) as fixed_last
                from (
                    select e, d, {macros["normal_p_value"]} as fixed, {macros["cs_p_value"]} as sequential
                    from g where se > 0
                ) as looks
                group by e
            ) as experiments
            """
        ).fetchone()
    # one look at the planned end is a valid fixed-horizon test (about alpha) ...
    assert 0.03 < fixed_last < 0.075
    # ... fourteen looks are not (the fixed-horizon test rejects far more often than alpha) ...
    assert fixed_any > 0.1
    # ... while the always-valid p-value stays below alpha however often it is read
    assert sequential_any < ALPHA
