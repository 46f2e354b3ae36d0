"""The playbook's read-out (recsys_eval.experiment_readout), cross-checked against independent code:

1. Bayesian read-out against gbstats 0.8.0's EffectBayesianABTest (GrowthBook's engine, run in
   .venv-stats-peers through tests/python/gbstats_bayes_reference.py) on the same sufficient
   statistics: chance to win, both expected losses (risk), the posterior mean and sd, to 1e-9,
   with the default flat prior and with proper priors. The statistics are clustered (users with
   several requests: ratio metrics) and per user (means).
2. Duration against statsmodels' NormalIndPower: the users per arm for the configured relative MDE
   (solve_power) and the power reached with them (power).
3. The configuration keys: experiment.mde, mde_power, bayesian.prior.* refused with the key named.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower

from recsys_eval.errors import ConfigError
from recsys_eval.experiment_readout import (
    bayesian_readout,
    bayesian_settings,
    duration,
    required_users,
    validate,
)

REPO = Path(__file__).resolve().parents[2]
PEERS_PYTHON = REPO / ".venv-stats-peers" / "bin" / "python"
REFERENCE = Path(__file__).with_name("gbstats_bayes_reference.py")


def _gbstats(cases: list[dict]) -> list[dict]:
    if not PEERS_PYTHON.exists():
        pytest.fail(
            f"{PEERS_PYTHON} is missing: run scripts/setup_stats_peers to create the gbstats "
            "reference environment (gbstats 0.8.0)"
        )
    proc = subprocess.run(
        [str(PEERS_PYTHON), str(REFERENCE)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert out["gbstats_version"] == "0.8.0"
    return out["cases"]


def clustered_stat(rng: np.random.Generator, users: int, rate: float) -> dict:
    """The unit sums of a ratio metric: per user requests d_u (heavy-tailed) and clicks e_u."""
    requests = np.where(
        rng.random(users) < 0.1, rng.integers(20, 60, users), rng.integers(1, 6, users)
    )
    propensity = np.clip(rate * rng.gamma(0.5, 2.0, users), 0, 1)
    clicks = rng.binomial(requests, propensity)
    return {
        "kind": "ratio",
        "n": users,
        "m_sum": float(clicks.sum()),
        "m_sum_squares": float((clicks * clicks).sum()),
        "d_sum": float(requests.sum()),
        "d_sum_squares": float((requests * requests).sum()),
        "m_d_sum_of_products": float((clicks * requests).sum()),
    }


def mean_stat(rng: np.random.Generator, users: int, scale: float) -> dict:
    """Revenue per user: most users spend nothing."""
    revenue = np.where(rng.random(users) < 0.2, rng.exponential(scale, users), 0.0)
    return {
        "kind": "mean",
        "n": users,
        "sum": float(revenue.sum()),
        "sum_squares": float((revenue * revenue).sum()),
    }


def test_bayesian_readout_matches_gbstats():
    rng = np.random.default_rng(20)
    priors = [
        {"mean": 0.0, "variance": 1.0, "proper": False},  # gbstats' default: flat
        {"mean": 0.0, "variance": 0.01, "proper": True},
        {"mean": 0.05, "variance": 0.002, "proper": True},
    ]
    cases = []
    for users, lift in [(400, 0.0), (2000, 0.05), (5000, -0.03), (800, 0.2)]:
        for prior in priors:
            cases.append(
                {
                    "a": clustered_stat(rng, users, 0.1),
                    "b": clustered_stat(rng, users + 37, 0.1 * (1 + lift)),
                    "prior": prior,
                }
            )
            cases.append(
                {
                    "a": mean_stat(rng, users, 20.0),
                    "b": mean_stat(rng, users - 11, 20.0 * (1 + lift)),
                    "prior": prior,
                }
            )
    references = _gbstats(cases)
    for case, ref in zip(cases, references, strict=True):
        assert ref["error_message"] is None
        ours = bayesian_readout(
            ref["a"]["mean"],
            ref["a"]["variance"],
            case["a"]["n"],
            ref["b"]["mean"],
            ref["b"]["variance"],
            case["b"]["n"],
            case["prior"],
        )
        assert ours is not None
        assert math.isclose(ours["chance_to_beat_control"], ref["chance_to_win"], abs_tol=1e-9)
        assert math.isclose(ours["control_expected_loss"], ref["risk"][0], abs_tol=1e-9)
        assert math.isclose(ours["expected_loss"], ref["risk"][1], abs_tol=1e-9)
        assert math.isclose(ours["posterior_mean"], ref["expected"], rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(ours["posterior_sd"], ref["stddev"], rel_tol=1e-9)


def test_bayesian_readout_edge_cases_and_settings():
    # a zero control mean or no variance: no read-out (gbstats answers its uninformative default)
    assert bayesian_readout(0.0, 1.0, 10, 0.5, 1.0, 10) is None
    assert bayesian_readout(0.5, 0.0, 10, 0.5, 1.0, 10) is None
    assert bayesian_settings({}) is None
    on = bayesian_settings({"bayesian": {"enabled": True, "prior": {"variance": 0.5}}})
    assert on == {"mean": 0.0, "variance": 0.5, "proper": False, "defaults": ["mean", "proper"]}
    # symmetric: the same data the other way round swap chance and loss
    a = bayesian_readout(0.1, 0.2, 1000, 0.1, 0.2, 1000)
    assert a is not None and math.isclose(a["chance_to_beat_control"], 0.5, abs_tol=1e-15)
    assert math.isclose(a["expected_loss"], a["control_expected_loss"], rel_tol=1e-12)


@pytest.mark.parametrize(
    ("mde", "alpha", "power", "share"),
    [(0.02, 0.05, 0.8, 0.5), (0.1, 0.01, 0.9, 0.5), (0.05, 0.05, 0.8, 0.3), (0.3, 0.1, 0.95, 0.6)],
)
def test_required_users_match_statsmodels(mde, alpha, power, share):
    control_mean, v0, v1 = 0.12, 0.9, 1.4
    n1, n0 = required_users(control_mean, v0, v1, mde, alpha, power, share)
    ratio = share / (1 - share)
    delta = mde * control_mean
    # NormalIndPower assumes one variance s^2 in both arms: n1 = z^2 (1 + 1/r) s^2 / delta^2, so the
    # common variance that gives our Var(diff) = v1 / n1 + v0 / n0 is (v1 + v0 / r) / (1 + 1 / r)
    common = (v1 + v0 / ratio) / (1 + 1 / ratio)
    effect = delta / math.sqrt(common)
    solved = NormalIndPower().solve_power(effect, alpha=alpha, power=power, ratio=ratio)
    # statsmodels also counts the opposite tail's power (< 1e-5 here), which we ignore
    assert math.isclose(n1, solved, rel_tol=1e-4)
    assert math.isclose(n0, ratio * n1, rel_tol=1e-12)
    reached = NormalIndPower().power(effect, nobs1=n1, alpha=alpha, ratio=ratio)
    assert math.isclose(reached, power, abs_tol=1e-5)


def test_duration_from_a_test_row():
    row = {
        "user_count": 1000,
        "control_user_count": 1000,
        "control_value": 0.1,
        "variant_unit_variance": 0.5,
        "control_unit_variance": 0.5,
        "observed_days": 4.0,
    }
    out = duration(row, mde=0.05, alpha=0.05, power=0.8)
    assert out is not None
    n1, n0 = required_users(0.1, 0.5, 0.5, 0.05, 0.05, 0.8, 0.5)
    assert out["required_users"] == math.ceil(n1) and out["required_control_users"] == math.ceil(n0)
    assert out["users_per_day"] == 500.0
    assert math.isclose(out["days_remaining"], (math.ceil(n1) + math.ceil(n0) - 2000) / 500.0)
    assert out["reached"] is False
    # the effect detectable with today's users: at it, statsmodels' power is the target
    effect = out["detectable_relative_lift_now"] * 0.1 / math.sqrt(0.5)
    reached = NormalIndPower().power(effect, nobs1=1000, alpha=0.05, ratio=1.0)
    assert math.isclose(reached, 0.8, abs_tol=1e-5)
    # enough users: reached, no days left
    done = duration({**row, "user_count": 10**7, "control_user_count": 10**7}, 0.05, 0.05, 0.8)
    assert done is not None and done["reached"] is True and done["days_remaining"] == 0.0
    assert duration({**row, "control_value": 0.0}, 0.05, 0.05, 0.8) is None


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"mde": 0.0}, "experiment.mde"),
        ({"mde": -0.1}, "experiment.mde"),
        ({"mde": float("nan")}, "experiment.mde"),
        ({"mde_power": 1.0}, "experiment.mde_power"),
        ({"bayesian": {"prior": {"variance": 0.0}}}, "experiment.bayesian.prior.variance"),
        ({"bayesian": {"prior": {"mean": float("inf")}}}, "experiment.bayesian.prior.mean"),
    ],
)
def test_bad_keys_are_refused_naming_the_key(block, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(block, "eval.yaml")


def _row(metric: str, position: int, **values) -> dict:
    base = {
        "scope": "global",
        "segment_key": "__all__",
        "variant": "B",
        "control_variant": "A",
        "metric": metric,
        "metric_label": {"ctr": "clicks per request"}.get(metric, metric),
        "metric_kind": "ratio",
        "test_position": position,
        "is_primary": metric == "ctr",
        "user_count": 1000,
        "control_user_count": 1000,
        "variant_value": 0.11,
        "control_value": 0.1,
        "variant_unit_variance": 0.5,
        "control_unit_variance": 0.5,
        "observed_days": 5.0,
        "absolute_lift": 0.01,
        "absolute_lift_ci_lower": -0.05,
        "absolute_lift_ci_upper": 0.07,
        "relative_lift": 0.1,
        "relative_lift_ci_lower": -0.5,
        "relative_lift_ci_upper": 0.7,
        "ci_level": 0.95,
        "alpha": 0.05,
        "p_value": 0.74,
        "adjusted_p_value": 0.74,
        "correction": "fdr_bh",
        "is_significant": False,
        "test_status": "ok",
    }
    return {**base, **values}


def test_readout_section_and_its_render_say_what_each_number_is():
    from recsys_eval.experiment_readout import readout_section
    from recsys_eval.render import render_report

    rows = [_row("ctr", 1), _row("revenue_per_user", 2, control_value=0.0, relative_lift=None)]
    exp = {"mde": 0.05, "bayesian": {"enabled": True}}
    section = readout_section(rows, exp)
    ctr, revenue = section["metric_tests"]
    assert ctr["label"] == "clicks per request" and ctr["primary"] is True
    assert set(ctr["bayesian"]) >= {"chance_to_beat_control", "expected_loss"}
    assert ctr["duration"]["power"] == 0.8 and section["duration"]["power_default"] is True
    assert section["bayesian"]["prior_defaults"] == ["mean", "proper", "variance"]
    # a zero control: no relative lift, so neither a Bayesian read-out nor a duration
    assert "bayesian" not in revenue and "duration" not in revenue
    report = {"mode": "experiment", "experiment": {"variants": [], "readout": section}}
    markdown = render_report(report, "md")
    for text in (
        "What to read: per-user tests of every metric",
        "clicks per request",
        "Chance to beat control",
        "flat (uninformative) prior",
        "Days remaining",
        "power 0.80 (default)",
        "| 10.00% | [-50.00%, 70.00%] (0.95) |",  # the relative lift and its interval, in percent
    ):
        assert text in markdown, text
    html = render_report(report, "html")
    assert "Relative lift per metric" in html and "<svg" in html
