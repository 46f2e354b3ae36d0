"""The OPE statistics from aggregates (recsys_eval.ope.aggregates: what the CLI computes from the
engine's sums) against the per-sample numpy code (recsys_eval.ope.estimators / diagnostics /
readout on the arrays, two-pass variances): the same numbers to 1e-12 relative. The SQL side of the
aggregates is checked against aggregates.from_samples in test_ope_obp.py and by dbt unit tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys_eval.config import apply_defaults
from recsys_eval.ope import aggregates, readout
from recsys_eval.ope.diagnostics import ItemCounts, weight_stats
from recsys_eval.ope.estimators import (
    Samples,
    bootstrap,
    bootstrap_from_blocks,
    estimate,
    grouped_estimates,
)
from recsys_eval.ope.plugin import compute

NAMES = ("ips", "snips", "dr", "dm", "sndr", "switch_dr")
TAU = 2.5
REL = 1e-12


def close(a: float, b: float, scale: float = 0.0) -> bool:
    """Equal to REL relative (or within REL x scale of 0, for values that are 0 up to rounding)."""
    return abs(a - b) <= REL * max(abs(a), abs(b), scale)


def samples(n: int, seed: int, constant_target: bool = False) -> tuple[Samples, np.ndarray]:
    rng = np.random.default_rng(seed)
    weight = rng.lognormal(0.0, 0.8, n)
    reward = (rng.random(n) < 0.2) * rng.exponential(1.0, n)
    model = rng.uniform(0.0, 0.5, n)
    target = np.full(n, 0.3) if constant_target else rng.uniform(0.0, 0.6, n)
    return Samples(weight, reward, model, target), rng.integers(0, 3, n)


@pytest.mark.parametrize("n", [1, 2, 57, 25_000])
def test_estimates_from_sums_equal_the_two_pass_numpy_estimates(n):
    s, _ = samples(n, n)
    g = aggregates.group_from_samples(s, 0, TAU)
    ours = aggregates.estimates(g, NAMES)
    reference = estimate(s, NAMES, TAU)
    for a, b in zip(ours, reference, strict=True):
        assert a.name == b.name
        scale = abs(b.value) + b.std_error
        assert close(a.value, b.value, scale), (a, b)
        assert close(a.variance, b.variance), (a, b)
        assert close(a.std_error, b.std_error), (a, b)


@pytest.mark.parametrize("constant_target", [False, True])
def test_segment_estimates_equal_grouped_estimates(constant_target):
    s, codes = samples(9_000, 3, constant_target)
    agg = aggregates.from_samples(s, codes, ["a", "b", "c"], 0, TAU)
    ours = aggregates.segment_estimates(list(agg.segments.values()))
    reference = grouped_estimates(s, codes, 3, TAU)
    for key, values in reference.items():
        for g in range(3):
            a, b = float(ours[key][g]), float(values[g])
            if key.startswith("se_dm") and constant_target:
                # a constant direct term: exactly 0 from the sums, rounding noise in np.bincount's
                assert a == 0.0 and abs(b) < 1e-15
                continue
            assert close(a, b, 1e-15), (key, g, a, b)


@pytest.mark.parametrize("n, blocks", [(5_000, 10_000), (25_000, 10_000), (25_000, 777)])
def test_bootstrap_from_block_sums_is_the_bootstrap(n, blocks):
    s, _ = samples(n, 11)
    agg = aggregates.from_samples(s, np.zeros(n, dtype=np.int64), ["__all__"], 0, TAU, blocks)
    assert agg.block_sums.shape == (min(n, blocks), 6)
    ours = bootstrap_from_blocks(agg.block_sums, NAMES, iterations=300, seed=5, ci_level=0.9)
    reference = bootstrap(s, NAMES, TAU, iterations=300, seed=5, ci_level=0.9, max_blocks=blocks)
    assert ours == reference  # the same block sums: the same draws, bit for bit
    assert ours["ips"].method == ("bootstrap" if n <= blocks else "block_bootstrap")


def test_weight_stats_logged_policy_and_r2_from_sums():
    s, _ = samples(4_001, 2)
    g = aggregates.group_from_samples(s, 17, TAU)
    ours = compute(
        aggregates.OpeAggregates(g, {}, np.zeros((0, 6))),
        ItemCounts(10, 10, 0, 0, 0, 17, 1.0, 0.0, 10.0, 10.0),
        apply_defaults({"ope": {"estimators": list(NAMES), "bootstrap": {"enabled": False}}})[
            "ope"
        ],
    )[0]
    reference = weight_stats(s.weight, 17)
    for key, value in reference.items():
        assert close(ours["weight_stats"][key], value), key
    r = s.reward
    logged = readout.logged_policy(r, 1.959963984540054, 0.95)
    assert close(ours["logged_policy"]["value"], logged["value"])
    assert close(ours["logged_policy"]["std_error"], logged["std_error"])
    r2 = 1 - np.dot(r - s.model_logged, r - s.model_logged) / np.dot(r - r.mean(), r - r.mean())
    assert close(ours["guidance"]["reward_model_r2"], float(r2))
    # p95 by hand: numpy's sorted weights at round-half-away(0.95 (n - 1)) = 3800
    assert ours["weight_stats"]["p95"] == np.sort(s.weight)[3800]
    assert math.isclose(ours["weight_stats"]["max"], s.weight.max())
