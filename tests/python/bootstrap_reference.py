"""An independent Python implementation of the offline Poisson bootstrap, for the tests.

Per replicate r = 1..B every evaluated case gets the weight W = F^-1(u), F the Poisson(1) CDF and
u = (first 13 hex digits of md5('<seed>|<request_id>|<r>')) / 2^52; the replicate's value is the
weighted mean; replicates without a drawn case are skipped; the interval is the sorted means at
floor(a (B' - 1)) and ceil((1 - a) (B' - 1)), a = (1 - level) / 2.
"""

from __future__ import annotations

import hashlib
import math


def poisson_thresholds(top: int = 15) -> list[float]:
    thresholds, term, cumulative = [], math.exp(-1.0), 0.0
    for w in range(top):
        cumulative += term
        thresholds.append(cumulative)
        term /= w + 1
    return thresholds


THRESHOLDS = poisson_thresholds()


def uniform(seed: int, request_id: str, replicate: int) -> float:
    digest = hashlib.md5(f"{seed}|{request_id}|{replicate}".encode()).hexdigest()
    return int(digest[:13], 16) / 2**52


def weight(seed: int, request_id: str, replicate: int) -> int:
    u = uniform(seed, request_id, replicate)
    return sum(1 for t in THRESHOLDS if u >= t)


def interval(
    values: dict[str, float], iterations: int = 200, seed: int = 42, level: float = 0.95
) -> tuple[float, float, int]:
    """(lower, upper, replicates used) of the mean of `values` (request_id -> value)."""
    means = []
    for r in range(1, iterations + 1):
        weights = {q: weight(seed, q, r) for q in values}
        total = sum(weights.values())
        if total == 0:
            continue
        means.append(sum(weights[q] * v for q, v in values.items()) / total)
    means.sort()
    a = (1 - level) / 2
    n = len(means)
    return means[math.floor(a * (n - 1))], means[math.ceil((1 - a) * (n - 1))], n
