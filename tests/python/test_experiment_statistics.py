"""Experiment statistics beyond the reference, cross-checked against statsmodels and scipy.

A generated dataset with users who carry several requests (heavy users, user-level randomization),
a planted ctr effect on B, a correlated pre-period covariate, worse serving on C and a leak into one
tenant's assignments is loaded as raw tables and built once. Then:

1. User-level delta method (fct_experiment_significance.user_*): statsmodels OLS of the per-request
   outcome on a treatment dummy with cluster-robust covariance (groups = user, no small-sample
   correction, normal p-values) gives the same absolute lift, standard error and p-value; a
   simulation shows that requests-as-independent understates the standard error with heavy users.
2. CUPED tests (fct_experiment_cuped_tests): OLS of Y - theta (X - mean X) on the dummy with HC0 is
   exact; OLS Y ~ treatment + (X - mean X) (HC0) agrees to O(1/n); the interval is narrower.
3. Guardrail non-inferiority (fct_experiment_guardrail_tests): statsmodels test_proportions_2indep
   (wald, diff, value = margin, alternative smaller) and ztest (unequal variances, ddof 0).
4. SRM (fct_experiment_srm): Holm across segments against statsmodels multipletests, and the
   largest share deviation by hand.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import statsmodels.api as sm
from dbt_helpers import run_dbt
from scipy import stats
from statsmodels.stats import proportion
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ztest
from test_experiment_models import load_planted, read_rows

MODELS = [
    "+fct_experiment_significance",
    "+fct_experiment_metric_tests",
    "+fct_experiment_cuped_tests",
    "+fct_experiment_guardrail_tests",
    "+fct_experiment_srm",
]

EXPECTED_WEIGHTS = {"A": 0.45, "B": 0.45, "C": 0.1}
MARGINS = {"error_rate": 0.005, "empty_rate": 0.01, "latency_mean": 0.1}  # latency: relative

VARS = {
    "recsys_eval__source": "raw",
    "recsys_eval__using_assignments": True,  # off on raw tables unless set
    "recsys_eval__using_rankers": False,
    "recsys_eval__experiment_id": "exp_users",
    "recsys_eval__experiment_control_variant": "A",
    "recsys_eval__experiment_slice_keys": ["tenant"],
    "recsys_eval__srm_slice_keys": ["tenant"],
    "recsys_eval__experiment_multiple_comparisons_method": "fdr_bh",
    "recsys_eval__experiment_ci_level": 0.95,
    "recsys_eval__experiment_srm_expected": EXPECTED_WEIGHTS,
    "recsys_eval__experiment_srm_min_sample": 100,
    "recsys_eval__experiment_srm_min_share_deviation": 0.01,
    "recsys_eval__experiment_cuped_covariate_key": "pre_period_ctr",
    "recsys_eval__experiment_guardrail_margins": MARGINS,
    "recsys_eval__experiment_guardrail_alpha": 0.05,
}

TENANTS = ["t1", "t2", "t3", "t4"]


def user_propensity(rng: random.Random) -> float:
    """Strongly heterogeneous users: most rarely click, a few click often."""
    return 0.01 + 0.5 * rng.random() ** 3


def user_requests(rng: random.Random) -> int:
    """Heavy-tailed requests per user: most 1-5, one in ten 20-60."""
    return rng.randint(20, 60) if rng.random() < 0.1 else rng.randint(1, 5)


def generate(seed: int = 7) -> dict:
    rng = random.Random(seed)
    exposures, outcomes, assignments, cases = [], [], [], []
    request_number = 0
    for user_index in range(2500):
        user_id = f"u{user_index:05d}"
        roll = rng.random()
        variant = "A" if roll < 0.45 else ("B" if roll < 0.9 else "C")
        tenant = TENANTS[user_index % 4]
        propensity = user_propensity(rng)
        for _ in range(user_requests(rng)):
            request_id = f"r{request_number:06d}"
            request_number += 1
            context = {"tenant": tenant}
            covariate = None
            if rng.random() < 0.95:  # 5 % of the cases have no pre-period value
                covariate = round(propensity + rng.gauss(0, 0.05), 6)
                context["pre_period_ctr"] = repr(covariate)
            empty = rng.random() < (0.04 if variant == "C" else 0.02)
            items = [] if empty else [{"item_id": f"i{rng.randrange(30)}", "rank": 1}]
            mean_latency = {"A": 100.0, "B": 102.0, "C": 125.0}[variant]
            latency = None if rng.random() < 0.03 else round(rng.gauss(mean_latency, 20), 3)
            error = rng.random() < {"A": 0.01, "B": 0.011, "C": 0.03}[variant]
            second = request_number % 3600
            ts = f"2025-03-01 {second // 3600:02d}:{(second // 60) % 60:02d}:{second % 60:02d}"
            exposures.append(
                [request_id, user_id, ts, json.dumps(items), json.dumps(context), latency, error]
            )
            probability = min(1.0, propensity + (0.05 if variant == "B" else 0.0))
            clicks = 0
            if rng.random() < probability:
                clicks = 2 if rng.random() < 0.2 else 1
            conversions = 0
            for _ in range(clicks):
                outcomes.append([request_id, "click", 1.0, ts])
                if rng.random() < 0.3:
                    outcomes.append([request_id, "conversion", 5.0, ts])
                    conversions += 1
            assignments.append(["exp_users", variant, request_id, tenant])
            cases.append(
                {
                    "user_id": user_id,
                    "variant": variant,
                    "tenant": tenant,
                    "clicks": clicks,
                    "conversions": conversions,
                    "covariate": covariate,
                    "empty": empty,
                    "latency": latency,
                    "error": error,
                }
            )
    for j in range(800):  # a leak into tenant t4's B arm: assignment rows only (SRM)
        assignments.append(["exp_users", "B", f"leak{j:03d}", "t4"])
    return {
        "exposures": exposures,
        "outcomes": outcomes,
        "assignments": assignments,
        "cases": cases,
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    work_dir = tmp_path_factory.mktemp("experiment_statistics")
    data = generate()
    database = work_dir / "statistics.duckdb"
    load_planted(database, data, work_dir)
    with mock.patch.dict(os.environ, {"DBT_INDIRECT_SELECTION": "cautious"}):
        result, _ = run_dbt(work_dir, "statistics", "build", VARS, database, MODELS)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return {"database": database, **data}


def population(cases: list[dict], scope: str, segment_key: str) -> list[dict]:
    if scope == "global":
        return cases
    return [case for case in cases if f"tenant={case['tenant']}" == segment_key]


def rel_close(actual: float, expected: float, tolerance: float) -> bool:
    return math.isclose(actual, expected, rel_tol=tolerance, abs_tol=1e-300)


# -- 1. user-level delta method -------------------------------------------------------------------


def cluster_ols(y: np.ndarray, treatment: np.ndarray, groups: np.ndarray):
    design = sm.add_constant(treatment.astype(float))
    return sm.OLS(y, design).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}, use_t=False
    )


def test_user_delta_method_matches_cluster_robust_ols(built):
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_significance order by test_position",
    )
    assert len(rows) == 2 * 2 * (1 + len(TENANTS))
    user_codes = {}
    for row in rows:
        field = "clicks" if row["metric"] == "ctr" else "conversions"
        cases = [
            case
            for case in population(built["cases"], row["scope"], row["segment_key"])
            if case["variant"] in (row["variant"], "A")
        ]
        y = np.array([case[field] for case in cases], dtype=float)
        treatment = np.array([case["variant"] != "A" for case in cases])
        groups = np.array(
            [user_codes.setdefault(case["user_id"], len(user_codes)) for case in cases]
        )
        fit = cluster_ols(y, treatment, groups)
        # OLS on a dummy: the coefficient is the difference of per-request means (the ratio metrics);
        # the CR0 sandwich of each group mean is sum_u (e_u - R d_u)^2 / (sum d)^2, the delta method
        assert math.isclose(row["absolute_lift"], fit.params[1], abs_tol=1e-12)
        assert rel_close(row["user_absolute_lift_standard_error"], fit.bse[1], 1e-9), row
        assert rel_close(row["user_z_score"], fit.tvalues[1], 1e-9)
        assert rel_close(row["user_p_value"], fit.pvalues[1], 1e-9)
        assert row["user_count"] == len(
            {case["user_id"] for case in cases if case["variant"] != "A"}
        )
        assert row["control_user_count"] == len(
            {case["user_id"] for case in cases if case["variant"] == "A"}
        )
        # per-arm variance of the ratio: intercept-only cluster-robust OLS within the arm
        arm_variances = []
        for in_variant, column in [
            (True, "user_variant_rate_variance"),
            (False, "user_control_rate_variance"),
        ]:
            mask = treatment == in_variant
            arm = sm.OLS(y[mask], np.ones(mask.sum())).fit(
                cov_type="cluster", cov_kwds={"groups": groups[mask], "use_correction": False}
            )
            arm_variances.append(arm.bse[0] ** 2)
            assert rel_close(row[column], arm.bse[0] ** 2, 1e-9), column
        # relative lift: delta method on the two independent ratio estimators
        r1, r0 = row["variant_rate"], row["control_rate"]
        relative_se = math.sqrt(arm_variances[0] / r0**2 + r1**2 * arm_variances[1] / r0**4)
        assert rel_close(row["user_relative_lift_standard_error"], relative_se, 1e-9)
        z = stats.norm.ppf(0.975)
        assert math.isclose(
            row["user_absolute_lift_ci_lower"], row["absolute_lift"] - z * fit.bse[1], abs_tol=1e-12
        )
        assert math.isclose(
            row["user_relative_lift_ci_upper"], row["relative_lift"] + z * relative_se, abs_tol=1e-9
        )
        # the reference columns are untouched and computed at the request level
        assert row["user_design_effect"] == pytest.approx(
            (row["user_absolute_lift_standard_error"] / row["absolute_lift_standard_error"]) ** 2
        )
    # the user-level family: BH over every user p-value (statsmodels)
    p_values = [row["user_p_value"] for row in rows]
    _, adjusted, _, _ = multipletests(p_values, method="fdr_bh")
    for row, expected in zip(rows, adjusted, strict=True):
        assert rel_close(row["user_adjusted_p_value"], expected, 1e-9)
        assert row["user_family_size"] == len(rows)
        assert row["user_is_significant"] == (expected <= 0.05)
    # the planted effect survives the honest variance: B's global ctr
    (b_ctr,) = [
        r for r in rows if (r["scope"], r["variant"], r["metric"]) == ("global", "B", "ctr")
    ]
    assert b_ctr["user_is_significant"] is True and b_ctr["user_absolute_lift_ci_lower"] > 0


def test_heavy_users_inflate_the_standard_error(built):
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_significance where scope = 'global' and metric = 'ctr'",
    )
    for row in rows:
        # heavy users with persistent propensities: the request-level SE is far too small
        assert row["user_design_effect"] > 2, row


def simulate_lifts(replicates: int = 300, seed: int = 11) -> dict:
    """A/A replicates of the generator's user structure (no effect), vectorised with numpy."""
    rng = np.random.default_rng(seed)
    lifts, request_ses, user_ses = [], [], []
    for _ in range(replicates):
        users = 600
        heavy = rng.random(users) < 0.1
        requests = np.where(heavy, rng.integers(20, 61, users), rng.integers(1, 6, users))
        propensity = 0.01 + 0.5 * rng.random(users) ** 3
        clicks = rng.binomial(requests, propensity)  # per user: clicks over its requests
        arm = rng.random(users) < 0.5
        estimates = {}
        for label, mask in [("variant", arm), ("control", ~arm)]:
            e, d = clicks[mask].astype(float), requests[mask].astype(float)
            n, total_d = mask.sum(), d.sum()
            ratio = e.sum() / total_d
            # the SQL formula: n Var(R) = (S_ee - 2 R S_ed + R^2 S_dd) n / (sum d)^2, Var(R) = that / n
            user_variance = (
                np.sum(e * e) - 2 * ratio * np.sum(e * d) + ratio**2 * np.sum(d * d)
            ) / (total_d**2)
            # requests as independent Bernoulli trials: the per-request variance / requests
            request_variance = ratio * (1 - ratio) / total_d
            estimates[label] = (ratio, user_variance, request_variance, n)
        lifts.append(estimates["variant"][0] - estimates["control"][0])
        user_ses.append(math.sqrt(estimates["variant"][1] + estimates["control"][1]))
        request_ses.append(math.sqrt(estimates["variant"][2] + estimates["control"][2]))
    return {
        "lifts": np.array(lifts),
        "user_ses": np.array(user_ses),
        "request_ses": np.array(request_ses),
    }


def test_simulation_requests_as_independent_understate_the_se():
    simulation = simulate_lifts()
    empirical = simulation["lifts"].std(ddof=1)
    # with 300 replicates the empirical SD is itself known to about +-4 % (1 / sqrt(2 x 300))
    assert simulation["user_ses"].mean() / empirical == pytest.approx(1.0, abs=0.12)
    assert simulation["request_ses"].mean() / empirical < 0.7
    z = stats.norm.ppf(0.975)
    user_coverage = np.mean(np.abs(simulation["lifts"]) <= z * simulation["user_ses"])
    request_coverage = np.mean(np.abs(simulation["lifts"]) <= z * simulation["request_ses"])
    assert user_coverage > 0.9
    assert request_coverage < 0.85


# -- 2. CUPED inference ---------------------------------------------------------------------------


def test_cuped_tests_match_ols(built):
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_cuped_tests order by scope, segment_key, variant, metric_position",
    )
    (cuped,) = read_rows(built["database"], "select * from recsys_eval_marts.fct_experiment_cuped")
    assert cuped["is_active"] is True
    assert len(rows) == 2 * 2 * (1 + len(TENANTS))
    covariate_cases = [case for case in built["cases"] if case["covariate"] is not None]
    global_mean = np.mean([case["covariate"] for case in covariate_cases])
    for row in rows:
        field = "clicks" if row["metric"] == "click_share" else "conversions"
        theta = (
            cuped["theta_ctr"] if row["metric"] == "click_share" else cuped["theta_conversion_rate"]
        )
        assert math.isclose(row["cuped_theta"], theta, abs_tol=1e-15)
        cases = [
            case
            for case in population(covariate_cases, row["scope"], row["segment_key"])
            if case["variant"] in (row["variant"], "A")
        ]
        y = np.array([1.0 if case[field] > 0 else 0.0 for case in cases])
        x = np.array([case["covariate"] for case in cases]) - global_mean
        treatment = np.array([case["variant"] != "A" for case in cases], dtype=float)
        assert row["cuped_exposures"] == int(treatment.sum())
        # exact: theta fixed, OLS of Y - theta (X - mean X) on the dummy with HC0 (the per-arm
        # population variances of the adjusted outcome over n: Var(Y - theta X) / n per arm)
        fixed = sm.OLS(y - theta * x, sm.add_constant(treatment)).fit(cov_type="HC0")
        assert math.isclose(row["cuped_absolute_lift"], fixed.params[1], abs_tol=1e-12)
        assert rel_close(row["cuped_absolute_lift_standard_error"], fixed.bse[1], 1e-9)
        assert rel_close(row["cuped_p_value"], 2 * stats.norm.sf(abs(fixed.tvalues[1])), 1e-9)
        unadjusted = sm.OLS(y, sm.add_constant(treatment)).fit(cov_type="HC0")
        assert math.isclose(
            row["cuped_unadjusted_absolute_lift"], unadjusted.params[1], abs_tol=1e-12
        )
        assert rel_close(row["cuped_unadjusted_standard_error"], unadjusted.bse[1], 1e-9)
        # the regression form Y ~ treatment + (X - mean X), HC0, is CUPED with the within-arm slope
        # theta_w instead of the reference's pooled total-covariance theta: the two lifts differ by
        # exactly (theta_w - theta) (mean1(X) - mean0(X)) ...
        regression = sm.OLS(y, np.column_stack([np.ones_like(y), treatment, x])).fit(cov_type="HC0")
        shift = x[treatment == 1].mean() - x[treatment == 0].mean()
        assert math.isclose(
            row["cuped_absolute_lift"] - regression.params[1],
            (regression.params[2] - theta) * shift,
            abs_tol=1e-12,
        )
        # ... and its sandwich uses the residuals of theta_w and adds the slope's own sampling variance
        # (shift^2 Var(theta_w), O(1/n^2) next to the O(1/n) variance of the lift). Globally the
        # standard errors agree to 1 %; a segment regression fits the segment's own slope while CUPED
        # keeps the global theta (reference §5.7), so there 3 % (observed: at most 1.8 %)
        tolerance = 0.01 if row["scope"] == "global" else 0.03
        assert rel_close(row["cuped_absolute_lift_standard_error"], regression.bse[1], tolerance)
        # variance reduction: the interval is narrower than the unadjusted one on the same cases
        assert row["cuped_absolute_lift_standard_error"] < row["cuped_unadjusted_standard_error"]
        width = row["cuped_absolute_lift_ci_upper"] - row["cuped_absolute_lift_ci_lower"]
        assert width == pytest.approx(
            2 * stats.norm.ppf(0.975) * row["cuped_absolute_lift_standard_error"]
        )
        assert row["cuped_variance_reduction"] == pytest.approx(
            1
            - (row["cuped_absolute_lift_standard_error"] / row["cuped_unadjusted_standard_error"])
            ** 2
        )
    # the pre-period covariate explains much of ctr: a real variance reduction on the global tests
    (b_ctr,) = [
        r for r in rows if (r["scope"], r["variant"], r["metric"]) == ("global", "B", "click_share")
    ]
    assert b_ctr["cuped_variance_reduction"] > 0.1
    _, adjusted, _, _ = multipletests([row["cuped_p_value"] for row in rows], method="fdr_bh")
    for row, expected in zip(rows, adjusted, strict=True):
        assert rel_close(row["cuped_adjusted_p_value"], expected, 1e-9)


# -- 3. guardrail non-inferiority -----------------------------------------------------------------


def test_guardrail_non_inferiority_matches_statsmodels(built):
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_guardrail_tests order by variant, guardrail_position",
    )
    assert [(row["variant"], row["guardrail"]) for row in rows] == [
        (variant, guardrail) for variant in ["B", "C"] for guardrail in MARGINS
    ]
    by_variant: dict[str, list[dict]] = {}
    for case in built["cases"]:
        by_variant.setdefault(case["variant"], []).append(case)
    control = by_variant["A"]
    for row in rows:
        variant = by_variant[row["variant"]]
        margin = MARGINS[row["guardrail"]]
        assert row["margin"] == margin
        if row["guardrail"] in ("error_rate", "empty_rate"):
            field = "error" if row["guardrail"] == "error_rate" else "empty"
            count1, count0 = sum(c[field] for c in variant), sum(c[field] for c in control)
            result = proportion.test_proportions_2indep(
                count1, len(variant), count0, len(control),
                value=margin, method="wald", compare="diff", alternative="smaller",
            )  # fmt: skip
            assert math.isclose(
                row["estimate"], count1 / len(variant) - count0 / len(control), abs_tol=1e-12
            )
        else:
            x1 = np.array([c["latency"] for c in variant if c["latency"] is not None])
            x0 = np.array([c["latency"] for c in control if c["latency"] is not None])
            # H0: mean1 >= (1 + margin) mean0  <=>  mean(x1) - mean((1 + margin) x0) >= 0
            result = ztest(
                x1, (1 + margin) * x0, value=0, alternative="smaller", usevar="unequal", ddof=0
            )
            result = type("Result", (), {"statistic": result[0], "pvalue": result[1]})
            assert math.isclose(row["estimate"], x1.mean() / x0.mean() - 1, abs_tol=1e-12)
        assert rel_close(row["z_score"], result.statistic, 1e-9), row
        assert rel_close(row["p_value"], result.pvalue, 1e-9), row
        assert row["is_non_inferior"] == (result.pvalue < 0.05)
        assert row["test_status"] == "ok"
        assert row["is_candidate"] == (row["variant"] == "B")
    verdicts = {(row["variant"], row["guardrail"]): row["is_non_inferior"] for row in rows}
    # C's latency is 25 % above control: not non-inferior at a 10 % margin; B's 2 % is
    assert verdicts[("C", "latency_mean")] is False
    assert verdicts[("B", "latency_mean")] is True


# -- 4. SRM ---------------------------------------------------------------------------------------


def test_srm_holm_across_segments_and_share_gate(built):
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_srm order by scope, segment_key, variant",
    )
    populations: dict[tuple, list[dict]] = {}
    for row in rows:
        populations.setdefault((row["scope"], row["segment_key"]), []).append(row)
    total_weight = sum(EXPECTED_WEIGHTS.values())
    for cells in populations.values():
        n = cells[0]["sample_size"]
        deviations = []
        for cell in cells:
            expected_share = EXPECTED_WEIGHTS[cell["variant"]] / total_weight
            assert math.isclose(cell["observed_share"], cell["observed_rows"] / n, abs_tol=1e-15)
            assert math.isclose(cell["expected_share"], expected_share, abs_tol=1e-15)
            deviations.append(abs(cell["observed_rows"] / n - expected_share))
        for cell in cells:
            assert math.isclose(cell["max_abs_share_deviation"], max(deviations), abs_tol=1e-15)
            assert cell["is_share_deviation_material"] == (max(deviations) >= 0.01)
    segments = sorted(key for key in populations if key[0] == "segment")
    assert len(segments) == len(TENANTS)
    family = [key for key in segments if populations[key][0]["sample_size"] >= 100]
    p_values = [populations[key][0]["p_value"] for key in family]
    _, holm, _, _ = multipletests(p_values, method="holm")
    for key, expected in zip(family, holm, strict=True):
        for cell in populations[key]:
            assert rel_close(cell["holm_p_value"], expected, 1e-12)
            assert cell["segment_family_size"] == len(family)
            assert cell["is_material_srm"] == (
                expected < 0.001 and cell["max_abs_share_deviation"] >= 0.01
            )
    for cell in populations[("global", "__all__")]:
        assert cell["holm_p_value"] == cell["p_value"]
        assert cell["segment_family_size"] is None
    # the leak into t4 is detected there after the correction, and is material. (Other tenants can
    # be flagged too: SRM counts request rows while users are randomized, and heavy users make
    # request counts over-dispersed; a user-level SRM would not be.)
    (leak,) = {cell["is_material_srm"] for cell in populations[("segment", "tenant=t4")]}
    assert leak is True


# -- 5. var validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        (
            {"recsys_eval__experiment_guardrail_margins": {"latency_p95": 0.1}},
            "unknown metric 'latency_p95'",
        ),
        (
            {"recsys_eval__experiment_guardrail_margins": {"error_rate": -0.01}},
            "the margin of 'error_rate' must be a number >= 0",
        ),
        (
            {"recsys_eval__experiment_guardrail_alpha": 0},
            "recsys_eval__experiment_guardrail_alpha must be in (0, 1)",
        ),
        (
            {"recsys_eval__experiment_srm_min_share_deviation": 1.5},
            "recsys_eval__experiment_srm_min_share_deviation must be in [0, 1)",
        ),
    ],
)
def test_invalid_statistics_vars_fail_compilation(tmp_path: Path, dbt_vars, message):
    result, _ = run_dbt(
        tmp_path,
        "invalid",
        "compile",
        dbt_vars,
        select=["fct_experiment_guardrail_tests", "fct_experiment_srm"],
    )
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]


# -- 6. one meaning per metric, at the randomization unit (fct_experiment_metric_tests) ------------

# each defined metric's per-request numerator (a function of a case) and its denominator
METRIC_NUMERATORS = {
    "ctr": lambda case: case["clicks"],
    "click_share": lambda case: 1.0 if case["clicks"] > 0 else 0.0,
    "conversion_rate": lambda case: case["conversions"],
    "conversion_share": lambda case: 1.0 if case["conversions"] > 0 else 0.0,
    "revenue_per_request": lambda case: 5.0 * case["conversions"],  # conversions are worth 5
    "revenue_per_user": lambda case: 5.0 * case["conversions"],
}


def test_metric_tests_match_cluster_robust_ols(built):
    """Every defined metric's user-level test: the ratio metrics against statsmodels' OLS with
    cluster-robust (CR0) covariance by user on the per-request outcomes, the per-user mean against
    OLS on the per-user totals (HC0); lift, standard error, p-value to 1e-9, the family's BH against
    multipletests, the relative lift's delta-method SE by hand."""
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_metric_tests order by test_position",
    )
    assert [r["metric"] for r in rows[:6]] == list(METRIC_NUMERATORS)
    assert len(rows) == 6 * 2 * (1 + len(TENANTS))
    user_codes: dict[str, int] = {}
    for row in rows:
        numerator = METRIC_NUMERATORS[row["metric"]]
        cases = [
            case
            for case in population(built["cases"], row["scope"], row["segment_key"])
            if case["variant"] in (row["variant"], "A")
        ]
        if row["metric"] == "revenue_per_user":
            totals: dict[tuple[str, bool], float] = {}
            for case in cases:
                key = (case["user_id"], case["variant"] != "A")
                totals[key] = totals.get(key, 0.0) + numerator(case)
            y = np.array(list(totals.values()))
            treatment = np.array([key[1] for key in totals])
            fit = sm.OLS(y, sm.add_constant(treatment.astype(float))).fit(cov_type="HC0")
        else:
            y = np.array([numerator(case) for case in cases], dtype=float)
            treatment = np.array([case["variant"] != "A" for case in cases])
            groups = np.array(
                [user_codes.setdefault(case["user_id"], len(user_codes)) for case in cases]
            )
            fit = cluster_ols(y, treatment, groups)
        arm, control = y[treatment], y[~treatment]
        assert math.isclose(row["variant_value"], arm.mean(), rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(row["control_value"], control.mean(), rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(row["absolute_lift"], fit.params[1], abs_tol=1e-12)
        assert rel_close(row["absolute_lift_standard_error"], fit.bse[1], 1e-9), row
        assert rel_close(row["p_value"], fit.pvalues[1], 1e-9), row
        variance1 = row["variant_unit_variance"] / row["user_count"]
        variance0 = row["control_unit_variance"] / row["control_user_count"]
        assert rel_close(variance1 + variance0, fit.bse[1] ** 2, 1e-9)
        r1, r0 = row["variant_value"], row["control_value"]
        relative_se = math.sqrt(variance1 / r0**2 + r1**2 * variance0 / r0**4)
        assert rel_close(row["relative_lift_standard_error"], relative_se, 1e-9)
        assert math.isclose(row["relative_lift"], r1 / r0 - 1, rel_tol=1e-12)
    _, adjusted, _, _ = multipletests([row["p_value"] for row in rows], method="fdr_bh")
    for row, expected in zip(rows, adjusted, strict=True):
        assert rel_close(row["adjusted_p_value"], expected, 1e-9)
        assert row["family_size"] == len(rows)
        assert row["is_significant"] == (expected <= 0.05)
    # ctr and conversion_rate: the same numbers as the user-level columns of the reference mart
    reference = {
        (r["scope"], r["segment_key"], r["variant"], r["metric"]): r
        for r in read_rows(
            built["database"], "select * from recsys_eval_marts.fct_experiment_significance"
        )
    }
    for row in rows:
        twin = reference.get((row["scope"], row["segment_key"], row["variant"], row["metric"]))
        if twin is not None:
            assert row["absolute_lift_standard_error"] == twin["user_absolute_lift_standard_error"]
            assert row["p_value"] == twin["user_p_value"]


def test_cuped_and_the_test_of_a_metric_share_its_definition(built):
    """CUPED adjusts the share metrics: its rows are named click_share / conversion_share (the old
    'ctr' there was the share of requests with a click while the test's ctr is clicks per request),
    and on the same cases its unadjusted mean is the metric tests' definition of that name."""
    cuped = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_cuped_tests where scope = 'global'",
    )
    tests = {
        (r["variant"], r["metric"]): r
        for r in read_rows(
            built["database"],
            "select * from recsys_eval_marts.fct_experiment_metric_tests where scope = 'global'",
        )
    }
    assert {r["metric"] for r in cuped} == {"click_share", "conversion_share"}
    covariate_cases = [case for case in built["cases"] if case["covariate"] is not None]
    for row in cuped:
        numerator = METRIC_NUMERATORS[row["metric"]]
        twin = tests[(row["variant"], row["metric"])]
        assert (
            twin["metric_kind"] == "proportion"
            and twin["metric_position"] == row["metric_position"]
        )
        for variant, column, twin_column in [
            (row["variant"], "cuped_unadjusted_variant_mean", "variant_value"),
            ("A", "cuped_unadjusted_control_mean", "control_value"),
        ]:
            every = [numerator(c) for c in built["cases"] if c["variant"] == variant]
            covered = [numerator(c) for c in covariate_cases if c["variant"] == variant]
            # one definition: the share over the cases each analysis uses
            assert math.isclose(twin[twin_column], np.mean(every), rel_tol=1e-12)
            assert math.isclose(row[column], np.mean(covered), rel_tol=1e-12)
            # and a 95 % random subset of the cases estimates the same share (not twice it)
            assert abs(row[column] - twin[twin_column]) < 0.02


def test_sql_unit_variances_are_gbstats_ratio_variances(built):
    """The per-user variance of fct_experiment_metric_tests (population moments, divide by n) is
    gbstats 0.8.0's RatioStatistic / SampleMeanStatistic variance (divide by n - 1) times
    (n - 1) / n, on the same per-user sums: the Bayesian read-out's inputs are gbstats' quantity."""
    from test_experiment_readout import _gbstats

    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_metric_tests where scope = 'global'"
        " and metric in ('ctr', 'revenue_per_user') order by variant, metric",
    )
    cases = []
    for row in rows:
        numerator = METRIC_NUMERATORS[row["metric"]]
        stats_by_arm = []
        for variant in ("A", row["variant"]):
            per_user: dict[str, list[float]] = {}
            for case in built["cases"]:
                if case["variant"] == variant:
                    per_user.setdefault(case["user_id"], [0.0, 0.0])
                    per_user[case["user_id"]][0] += numerator(case)
                    per_user[case["user_id"]][1] += 1
            m = np.array([v[0] for v in per_user.values()])
            d = np.array([v[1] for v in per_user.values()])
            if row["metric"] == "revenue_per_user":
                stat = {"kind": "mean", "n": len(m), "sum": m.sum(), "sum_squares": (m * m).sum()}
            else:
                stat = {
                    "kind": "ratio",
                    "n": len(m),
                    "m_sum": m.sum(),
                    "m_sum_squares": (m * m).sum(),
                    "d_sum": d.sum(),
                    "d_sum_squares": (d * d).sum(),
                    "m_d_sum_of_products": (m * d).sum(),
                }
            stats_by_arm.append({k: float(v) if k != "kind" else v for k, v in stat.items()})
        cases.append(
            {
                "a": stats_by_arm[0],
                "b": stats_by_arm[1],
                "prior": {"mean": 0, "variance": 1, "proper": False},
            }
        )
    for row, ref in zip(rows, _gbstats(cases), strict=True):
        n1, n0 = row["user_count"], row["control_user_count"]
        assert rel_close(row["variant_unit_variance"], ref["b"]["variance"] * (n1 - 1) / n1, 1e-9)
        assert rel_close(row["control_unit_variance"], ref["a"]["variance"] * (n0 - 1) / n0, 1e-9)
        assert rel_close(row["variant_value"], ref["b"]["mean"], 1e-12)
