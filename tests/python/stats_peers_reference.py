"""Run gbstats 0.8.0 and ssrm-test 0.1.5 on JSON from stdin; print their answers as JSON.

Runs in .venv-stats-peers (scripts/setup_stats_peers), never in the main venv:

    .venv-stats-peers/bin/python tests/python/stats_peers_reference.py < request.json

Request: {"alpha": a, "tuning_parameter": t,
          "lifts": [{"control": {"mean", "variance", "n"}, "variant": {...}}, ...],
          "ratios": [{"n", "m_sum", "m_sum_squares", "d_sum", "d_sum_squares", "m_d_sum_of_products"}, ...],
          "srm": {"data": [[counts per arm], ...], "null_probabilities": [...], "concentration": c}}
Answer: {"lifts": [{"absolute": {"ci", "p_value"}, "relative": {"ci", "p_value"}}, ...],
         "ratio_variances": [...], "srm": {"p_values": [...], "log_bayes_factors": [...]}, "versions": {...}}
"""

from __future__ import annotations

import importlib.metadata
import json
import sys

import numpy as np
from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
from gbstats.models.statistics import RatioStatistic, SampleMeanStatistic, Statistic
from pydantic.dataclasses import dataclass
from ssrm_test import constants, ssrm_test


@dataclass
class GivenStatistic(Statistic):
    """A statistic with the mean and per-unit variance given (what the SQL computed)."""

    given_mean: float
    given_variance: float

    @property
    def mean(self) -> float:
        return self.given_mean

    @property
    def variance(self) -> float:
        return self.given_variance


def sequential(
    control: dict, variant: dict, difference_type: str, alpha: float, tuning: float
) -> dict:
    stat_a = GivenStatistic(
        n=control["n"], given_mean=control["mean"], given_variance=control["variance"]
    )
    stat_b = GivenStatistic(
        n=variant["n"], given_mean=variant["mean"], given_variance=variant["variance"]
    )
    config = SequentialConfig(
        alpha=alpha, difference_type=difference_type, sequential_tuning_parameter=tuning
    )
    result = SequentialTwoSidedTTest(stat_a, stat_b, config).compute_result()
    return {"ci": [float(result.ci[0]), float(result.ci[1])], "p_value": float(result.p_value)}


def main() -> None:
    request = json.load(sys.stdin)
    alpha, tuning = request["alpha"], request["tuning_parameter"]
    out: dict = {
        "versions": {
            "gbstats": importlib.metadata.version("gbstats"),
            "ssrm-test": importlib.metadata.version("ssrm-test"),
        }
    }
    out["lifts"] = [
        {
            kind: sequential(pair["control"], pair["variant"], kind, alpha, tuning)
            for kind in ("absolute", "relative")
        }
        for pair in request.get("lifts", [])
    ]
    out["ratio_variances"] = [
        float(
            RatioStatistic(
                n=r["n"],
                m_statistic=SampleMeanStatistic(
                    n=r["n"], sum=r["m_sum"], sum_squares=r["m_sum_squares"]
                ),
                d_statistic=SampleMeanStatistic(
                    n=r["n"], sum=r["d_sum"], sum_squares=r["d_sum_squares"]
                ),
                m_d_sum_of_products=r["m_d_sum_of_products"],
            ).variance
        )
        for r in request.get("ratios", [])
    ]
    srm = request.get("srm")
    if srm:
        data = np.array(srm["data"], dtype=int)
        kwargs = {"dirichlet_concentration": srm["concentration"]}
        out["srm"] = {
            "p_values": [
                float(p)
                for p in ssrm_test.sequential_p_values(data, srm["null_probabilities"], **kwargs)
            ],
            "log_bayes_factors": [
                float(posterior[constants.LOG_BAYES_FACTOR])
                for posterior in ssrm_test.sequential_posteriors(
                    data, srm["null_probabilities"], **kwargs
                )
            ],
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
