"""OPE estimators over per-sample arrays, vectorised with numpy.

Every estimator is a function of a few sums over the samples, so the same code gives the global
value, the per-segment values (sums per segment with np.bincount) and the bootstrap replicates
(sums per resampled block). Notation per sample i (fct_ope_samples): w = importance_weight
(clipped), r = reward (position-weighted), m = model_logged (the reward model's prediction for
what was logged), d = model_target (the direct term: the target policy's expected model reward,
or m for the reference's reward model). n = number of samples.

    ips       (1/n) Σ w r
    snips     Σ w r / Σ w                         (0 when Σ w = 0)
    dm        (1/n) Σ d
    dr        (1/n) Σ [d + w (r - m)]
    sndr      (1/n) Σ d + Σ w (r - m) / Σ w
    switch_dr (1/n) Σ [d + 1{w <= τ} w (r - m)]

`variance` is the reference's (sample variance of the per-sample terms around the estimate, n - 1
denominator, 0 for n <= 1; for snips the terms w r around the SNIPS value). `std_error` is the
standard error of the estimate: sqrt(s² / n) of the per-sample terms for the mean-type estimators,
and the delta method for the self-normalised ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("ips", "snips", "dr", "dm", "sndr", "switch_dr")
# Column order of the sums matrix (one row per group: segment or bootstrap block).
SUM_COLUMNS = ("n", "w", "wr", "d", "wres", "switch_wres")


@dataclass(frozen=True)
class Samples:
    """The per-sample arrays (float64, equal length)."""

    weight: np.ndarray
    reward: np.ndarray
    model_logged: np.ndarray
    model_target: np.ndarray

    def __len__(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class Estimate:
    name: str
    value: float
    variance: float  # the reference's `variance`
    std_error: float


def _sample_variance(terms: np.ndarray, centre: float) -> float:
    n = terms.shape[0]
    if n <= 1:
        return 0.0
    dev = terms - centre
    return float(np.dot(dev, dev) / (n - 1))


def _summands(s: Samples, switch_threshold: float) -> tuple[np.ndarray, ...]:
    """The per-sample summands of SUM_COLUMNS after "n" (whose summand is 1): w, w r, d, w (r - m)
    and the same residual where w <= τ."""
    residual = s.weight * (s.reward - s.model_logged)
    switch = np.where(s.weight <= switch_threshold, residual, 0.0)
    return s.weight, s.weight * s.reward, s.model_target, residual, switch


def terms_matrix(s: Samples, switch_threshold: float) -> np.ndarray:
    """Per-sample summands, shape (n, len(SUM_COLUMNS))."""
    return np.column_stack((np.ones_like(s.weight), *_summands(s, switch_threshold)))


def values_from_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Estimator values from sums (..., len(SUM_COLUMNS)); broadcasts over leading axes.
    Groups without samples give 0."""
    n, w, wr, d, wres, switch = (sums[..., k] for k in range(len(SUM_COLUMNS)))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_n = np.where(n > 0, 1.0 / np.where(n > 0, n, 1.0), 0.0)
        inv_w = np.where(w != 0, 1.0 / np.where(w != 0, w, 1.0), 0.0)
    return {
        "ips": wr * inv_n,
        "snips": wr * inv_w,
        "dm": d * inv_n,
        "dr": (d + wres) * inv_n,
        "sndr": d * inv_n + wres * inv_w,
        "switch_dr": (d + switch) * inv_n,
    }


def estimate(s: Samples, names: tuple[str, ...], switch_threshold: float) -> list[Estimate]:
    """Point estimates, the reference's variance and standard errors, in the order of `names`."""
    n = len(s)
    w, r, m, d = s.weight, s.reward, s.model_logged, s.model_target
    out: list[Estimate] = []
    sum_w = float(w.sum())
    for name in names:
        if name == "ips":
            t = w * r
            value = float(t.sum() / n) if n else 0.0
            var = _sample_variance(t, value)
            se = math.sqrt(var / n) if n else 0.0
        elif name == "snips":
            t = w * r
            value = float(t.sum() / sum_w) if sum_w != 0 else 0.0
            var = _sample_variance(t, value)  # the reference's (non-standard) quantity
            # delta method: Var(Σwr/Σw) ≈ Σ w² (r - V)² / (Σw)²
            lin = w * (r - value)
            se = math.sqrt(float(np.dot(lin, lin))) / abs(sum_w) if sum_w != 0 else 0.0
        elif name in ("dm", "dr", "switch_dr"):
            if name == "dm":
                t = d
            elif name == "dr":
                t = d + w * (r - m)
            else:
                t = d + np.where(w <= switch_threshold, w * (r - m), 0.0)
            value = float(t.sum() / n) if n else 0.0
            var = _sample_variance(t, value)
            se = math.sqrt(var / n) if n else 0.0
        elif name == "sndr":
            res = w * (r - m)
            c = float(res.sum() / sum_w) if sum_w != 0 else 0.0
            value = (float(d.sum() / n) if n else 0.0) + c
            # linearised terms: d + (w / w̄) (r - m - c)
            w_bar = sum_w / n if n else 0.0
            lin = d + (w / w_bar) * (r - m - c) if w_bar != 0 else d.copy()
            var = _sample_variance(lin, float(lin.mean()) if n else 0.0)
            se = math.sqrt(var / n) if n else 0.0
        else:
            raise ValueError(f"unknown OPE estimator {name!r} (known: {', '.join(ESTIMATORS)})")
        out.append(Estimate(name, value, var, se))
    return out


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float
    level: float
    method: str
    replicates: int
    blocks: int


def _contiguous_block_sums(s: Samples, switch_threshold: float, blocks: int) -> np.ndarray:
    """Sums of the SUM_COLUMNS terms over `blocks` contiguous, near-equal blocks of the samples in
    file order, shape (blocks, len(SUM_COLUMNS)); sample i is in block floor(i * blocks / n), so
    block g starts at ceil(g * n / blocks). One np.add.reduceat per column, no (n x 6) matrix."""
    n = len(s)
    starts = (np.arange(blocks, dtype=np.int64) * n + blocks - 1) // blocks
    out = np.empty((blocks, len(SUM_COLUMNS)))
    out[:, 0] = np.diff(np.append(starts, n))  # "n": the block sizes
    for k, summand in enumerate(_summands(s, switch_threshold), start=1):
        out[:, k] = np.add.reduceat(summand, starts)
    return out


def bootstrap(
    s: Samples,
    names: tuple[str, ...],
    switch_threshold: float,
    *,
    iterations: int,
    seed: int,
    ci_level: float,
    max_blocks: int = 10_000,
) -> dict[str, Interval]:
    """Deterministic percentile bootstrap intervals.

    The samples (in file order) are cut into G = min(n, max_blocks) contiguous blocks of near-equal
    size; each replicate draws G blocks with replacement (numpy PCG64 seeded with `seed`) and
    recomputes every estimator from the drawn blocks' sums. With n <= max_blocks every block is one
    sample: the ordinary nonparametric bootstrap. Larger n gives a block bootstrap whose cost does
    not grow with n (one pass to build the block sums). Bounds: the sorted replicate values at
    floor(a (B - 1)) and ceil((1 - a) (B - 1)), a = (1 - ci_level) / 2 (the offline bootstrap's
    rule).
    """
    n = len(s)
    if n == 0 or iterations <= 0:
        return {}
    block_sums = _contiguous_block_sums(s, switch_threshold, min(n, max_blocks))
    return bootstrap_from_blocks(
        block_sums, names, iterations=iterations, seed=seed, ci_level=ci_level
    )


def bootstrap_from_blocks(
    block_sums: np.ndarray,
    names: tuple[str, ...],
    *,
    iterations: int,
    seed: int,
    ci_level: float,
) -> dict[str, Interval]:
    """`bootstrap`'s intervals from the G blocks' SUM_COLUMNS sums (int_recsys_eval__ope_block_sums
    or _contiguous_block_sums), shape (G, len(SUM_COLUMNS)); G = n means one sample per block."""
    blocks = int(block_sums.shape[0])
    n = round(float(block_sums[:, 0].sum())) if blocks else 0
    if n == 0 or iterations <= 0:
        return {}
    rng = np.random.Generator(np.random.PCG64(seed))
    # B x G draws (never B x n): replicate b's block counts land in row b
    draws = rng.integers(0, blocks, size=(iterations, blocks))
    draws += np.arange(iterations, dtype=np.int64)[:, None] * blocks
    counts = np.bincount(draws.ravel(), minlength=iterations * blocks).reshape(iterations, blocks)
    replicate_sums = counts @ block_sums
    values = values_from_sums(replicate_sums)
    a = (1.0 - ci_level) / 2.0
    lo_index = math.floor(a * (iterations - 1))
    hi_index = math.ceil((1.0 - a) * (iterations - 1))
    out = {}
    for name in names:
        ordered = np.sort(values[name])
        out[name] = Interval(
            lower=float(ordered[lo_index]),
            upper=float(ordered[hi_index]),
            level=ci_level,
            method="bootstrap" if blocks == n else "block_bootstrap",
            replicates=iterations,
            blocks=blocks,
        )
    return out


def grouped_estimates(
    s: Samples, group: np.ndarray, n_groups: int, switch_threshold: float
) -> dict[str, np.ndarray]:
    """Estimator values and sample counts per group (codes 0..n_groups-1), all via np.bincount;
    also the standard error of each mean-type estimator and the delta-method ones."""
    terms = terms_matrix(s, switch_threshold)
    sums = np.column_stack(
        [np.bincount(group, weights=terms[:, k], minlength=n_groups) for k in range(terms.shape[1])]
    )
    values = values_from_sums(sums)
    n = sums[:, 0]
    w_sum = sums[:, 1]

    def _se(per_sample: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
        dev = per_sample - centre[group]
        ss = np.bincount(group, weights=dev * dev, minlength=n_groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(scale > 0, np.sqrt(ss / np.where(scale > 0, scale, 1.0)), 0.0)

    mean_scale = np.where(n > 1, n * (n - 1), 0.0)
    w, r, m, d = s.weight, s.reward, s.model_logged, s.model_target
    res = w * (r - m)
    se = {
        "ips": _se(w * r, values["ips"], mean_scale),
        "dm": _se(d, values["dm"], mean_scale),
        "dr": _se(d + res, values["dr"], mean_scale),
        "switch_dr": _se(
            d + np.where(w <= switch_threshold, res, 0.0), values["switch_dr"], mean_scale
        ),
    }
    # delta method for the self-normalised ones
    lin_snips = w * (r - values["snips"][group])
    ss = np.bincount(group, weights=lin_snips * lin_snips, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        se["snips"] = np.where(
            w_sum != 0, np.sqrt(ss) / np.abs(np.where(w_sum != 0, w_sum, 1.0)), 0.0
        )
        w_bar = np.where(n > 0, w_sum / np.where(n > 0, n, 1.0), 0.0)
        c = np.where(w_sum != 0, sums[:, 4] / np.where(w_sum != 0, w_sum, 1.0), 0.0)
        ratio = np.where(w_bar[group] != 0, w / np.where(w_bar[group] != 0, w_bar[group], 1.0), 0.0)
    lin_sndr = d + ratio * (r - m - c[group])
    lin_mean = np.bincount(group, weights=lin_sndr, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        lin_mean = np.where(n > 0, lin_mean / np.where(n > 0, n, 1.0), 0.0)
    se["sndr"] = _se(lin_sndr, lin_mean, mean_scale)
    return {
        "n": n,
        **{f"value_{k}": v for k, v in values.items()},
        **{f"se_{k}": v for k, v in se.items()},
    }
