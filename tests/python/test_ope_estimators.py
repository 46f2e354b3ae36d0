"""The OPE estimators and diagnostics (recsys_eval.ope) on hand-computed arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys_eval.ope.diagnostics import (
    ItemCounts,
    diagnostics,
    round_half_away,
    warnings_for,
    weight_stats,
)
from recsys_eval.ope.estimators import (
    Samples,
    _contiguous_block_sums,
    bootstrap,
    estimate,
    grouped_estimates,
    terms_matrix,
)

NAMES = ("ips", "snips", "dr", "dm", "sndr", "switch_dr")


def toy() -> Samples:
    # w, r, m (logged), d (target direct term)
    return Samples(
        weight=np.array([0.5, 2.0, 1.0, 4.0]),
        reward=np.array([1.0, 0.0, 1.0, 1.0]),
        model_logged=np.array([0.5, 0.25, 0.5, 0.5]),
        model_target=np.array([0.4, 0.3, 0.4, 0.6]),
    )


def test_hand_computed_values():
    s = toy()
    got = {e.name: e for e in estimate(s, NAMES, switch_threshold=2.0)}
    # ips terms w r = [0.5, 0, 1, 4] -> 5.5 / 4
    assert got["ips"].value == 1.375
    assert got["ips"].variance == pytest.approx(
        ((0.5 - 1.375) ** 2 + 1.375**2 + (1 - 1.375) ** 2 + (4 - 1.375) ** 2) / 3, abs=1e-15
    )
    assert got["ips"].std_error == pytest.approx(math.sqrt(got["ips"].variance / 4), abs=1e-15)
    # snips 5.5 / 7.5
    assert got["snips"].value == pytest.approx(5.5 / 7.5, abs=1e-15)
    # residuals w (r - m) = [0.25, -0.5, 0.5, 2.0] -> 2.25; Σ d = 1.7
    assert got["dm"].value == pytest.approx(1.7 / 4, abs=1e-15)
    assert got["dr"].value == pytest.approx((1.7 + 2.25) / 4, abs=1e-15)
    assert got["sndr"].value == pytest.approx(1.7 / 4 + 2.25 / 7.5, abs=1e-15)
    # switch at 2: the w = 4 residual (2.0) is dropped
    assert got["switch_dr"].value == pytest.approx((1.7 + 0.25) / 4, abs=1e-15)


def test_empty_weight_sum_and_single_sample():
    s = Samples(*(np.array([x]) for x in (0.0, 1.0, 0.0, 0.0)))
    got = {e.name: e for e in estimate(s, ("ips", "snips"), 10.0)}
    assert got["snips"].value == 0.0 and got["ips"].variance == 0.0


@pytest.mark.parametrize("n, blocks", [(10, 10), (10, 3), (1003, 7), (5, 1)])
def test_block_sums_are_the_sums_over_contiguous_blocks(n, blocks):
    """Sample i is in block floor(i * G / n): the reduceat block sums equal a bincount over those
    block ids of the per-sample terms (terms_matrix), and every block is non-empty."""
    rng = np.random.default_rng(n + blocks)
    s = Samples(rng.uniform(0.1, 5, n), rng.random(n), rng.random(n), rng.random(n))
    block_of = (np.arange(n) * blocks) // n
    terms = terms_matrix(s, 2.0)
    expected = np.column_stack(
        [
            np.bincount(block_of, weights=terms[:, k], minlength=blocks)
            for k in range(terms.shape[1])
        ]
    )
    got = _contiguous_block_sums(s, 2.0, blocks)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    assert (got[:, 0] > 0).all() and got[:, 0].sum() == n


def test_grouped_matches_per_group_estimates():
    rng = np.random.default_rng(3)
    n = 500
    s = Samples(rng.uniform(0.2, 3, n), rng.integers(0, 2, n) * 1.0, rng.random(n), rng.random(n))
    group = rng.integers(0, 3, n)
    grouped = grouped_estimates(s, group, 3, 1.5)
    for g in range(3):
        m = group == g
        sub = Samples(s.weight[m], s.reward[m], s.model_logged[m], s.model_target[m])
        for e in estimate(sub, NAMES, 1.5):
            assert grouped[f"value_{e.name}"][g] == pytest.approx(e.value, abs=1e-12), e.name
            assert grouped[f"se_{e.name}"][g] == pytest.approx(e.std_error, abs=1e-12), e.name


def test_bootstrap_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(5)
    n = 3000
    s = Samples(rng.uniform(0.2, 3, n), (rng.random(n) < 0.3) * 1.0, rng.random(n), rng.random(n))
    a = bootstrap(s, NAMES, 2.0, iterations=300, seed=9, ci_level=0.9)
    b = bootstrap(s, NAMES, 2.0, iterations=300, seed=9, ci_level=0.9)
    c = bootstrap(s, NAMES, 2.0, iterations=300, seed=10, ci_level=0.9)
    assert a == b and a != c
    point = {e.name: e for e in estimate(s, NAMES, 2.0)}
    for name in NAMES:
        assert a[name].lower < point[name].value < a[name].upper
        # the percentile interval's half-width is close to 1.645 standard errors
        assert (a[name].upper - a[name].lower) / 2 == pytest.approx(
            1.645 * point[name].std_error, rel=0.2
        )
        assert a[name].method == "bootstrap"
    # above max_blocks: a block bootstrap over contiguous blocks, same order of width
    blocked = bootstrap(s, ("ips",), 2.0, iterations=300, seed=9, ci_level=0.9, max_blocks=500)
    assert blocked["ips"].method == "block_bootstrap" and blocked["ips"].blocks == 500
    assert (blocked["ips"].upper - blocked["ips"].lower) == pytest.approx(
        a["ips"].upper - a["ips"].lower, rel=0.3
    )


def test_weight_stats_follow_the_reference():
    assert round_half_away(0.5) == 1 and round_half_away(1.5) == 2 and round_half_away(2.4) == 2
    w = np.arange(1.0, 22.0)  # 21 weights: p95 index round(0.95 * 20) = 19 -> 20.0
    st = weight_stats(w, clipped_items=3)
    assert st["p95"] == 20.0 and st["max"] == 21.0 and st["count"] == 21
    assert st["effective_sample_size"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert st["clipped_fraction"] == 3 / 21
    # count <= 11: p95 is the maximum
    assert weight_stats(np.array([3.0, 1.0, 2.0]), 0)["p95"] == 3.0
    # request unit: clipped items over samples can exceed 1 (reference §6.4)
    assert weight_stats(np.array([1.1, 1.1]), 2)["clipped_fraction"] == 1.0
    assert weight_stats(np.array([1.1, 1.1]), 3)["clipped_fraction"] == 1.5


def test_warnings_say_what_to_do():
    counts = ItemCounts(
        listed_items=100, sample_items=90, missing_logging_propensity=6,
        missing_target_propensity=4, near_zero_propensity=2, clipped_items=20, target_mass=50.0,
        target_mass_without_logging=5.0, unclipped_weight_sum=180.0, unclipped_weight_sq_sum=500.0,
    )  # fmt: skip
    diag = diagnostics(counts, samples=90)
    assert diag["target_mass_outside_logging_support"] == 0.1
    assert diag["item_weight_mean"] == 2.0
    stats = {"count": 90, "clipped_fraction": 20 / 90, "effective_sample_size": 10.0}
    warns = warnings_for(stats, diag, allow_missing_target=False, min_propensity=1e-6)
    names = [w.split(":")[0] for w in warns]
    assert names == [
        "high_clipping_fraction",
        "low_effective_sample_size",
        "missing_target_propensity",
        "near_zero_propensity",
        "missing_logging_propensity",
        "target_mass_outside_logging_support",
        "weight_mean_off",
    ]
    clean = ItemCounts(10, 10, 0, 0, 0, 0, 5.0, 0.0, 10.0, 10.2)
    assert (
        warnings_for(
            {"count": 10, "clipped_fraction": 0.0, "effective_sample_size": 9.0},
            diagnostics(clean, 10),
            allow_missing_target=False,
            min_propensity=1e-6,
        )
        == []
    )
