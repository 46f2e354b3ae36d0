"""Run gbstats 0.8.0's Bayesian engine (EffectBayesianABTest) on sufficient statistics from stdin.

Runs in .venv-stats-peers (scripts/setup_stats_peers), never in the main venv:

    .venv-stats-peers/bin/python tests/python/gbstats_bayes_reference.py < cases.json

Input: a JSON list of cases {"a": stat, "b": stat, "prior": {mean, variance, proper}} where a stat
is {"kind": "ratio", "n", "m_sum", "m_sum_squares", "d_sum", "d_sum_squares", "m_d_sum_of_products"}
or {"kind": "mean", "n", "sum", "sum_squares"}; a is the control. Output: per case gbstats'
chance_to_win, risk [control, treatment], expected (posterior mean), uplift stddev, and each
stat's mean and variance as gbstats computes them (sample variances, divide by n - 1).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.models.statistics import RatioStatistic, SampleMeanStatistic


def statistic(s: dict):
    if s["kind"] == "mean":
        return SampleMeanStatistic(n=s["n"], sum=s["sum"], sum_squares=s["sum_squares"])
    return RatioStatistic(
        n=s["n"],
        m_statistic=SampleMeanStatistic(n=s["n"], sum=s["m_sum"], sum_squares=s["m_sum_squares"]),
        d_statistic=SampleMeanStatistic(n=s["n"], sum=s["d_sum"], sum_squares=s["d_sum_squares"]),
        m_d_sum_of_products=s["m_d_sum_of_products"],
    )


def main() -> None:
    out = []
    for case in json.load(sys.stdin):
        a, b = statistic(case["a"]), statistic(case["b"])
        config = EffectBayesianConfig(prior_effect=GaussianPrior(**case["prior"]))
        result = EffectBayesianABTest(a, b, config).compute_result()
        out.append(
            {
                "chance_to_win": float(result.chance_to_win),
                "risk": [float(r) for r in result.risk],
                "expected": float(result.expected),
                "stddev": float(result.uplift.stddev),
                "error_message": result.error_message,
                "a": {"mean": float(a.mean), "variance": float(a.variance)},
                "b": {"mean": float(b.mean), "variance": float(b.variance)},
            }
        )
    json.dump({"gbstats_version": importlib.metadata.version("gbstats"), "cases": out}, sys.stdout)


if __name__ == "__main__":
    main()
