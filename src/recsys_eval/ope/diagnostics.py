"""OPE diagnostics: the reference's weight statistics (§6.4) plus the checks it lacks, and warnings
that say what to do."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

CLIPPING_WARN = 0.1  # the reference's high_clipping_fraction threshold
ESS_WARN = 0.2  # the reference's low_effective_sample_size threshold (share of the samples)
SUPPORT_WARN = 0.01  # target mass outside the logging support worth a warning
WEIGHT_MEAN_TOLERANCE = 0.05  # |mean w - 1| beyond this (and 3 standard errors) is suspicious


def round_half_away(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def weight_stats(weights: np.ndarray, clipped_items: int) -> dict[str, Any]:
    """The reference's `weight_stats` over the recorded weights (one per sample)."""
    count = int(weights.shape[0])
    if count == 0:
        return weight_stats_from_sums(0, 0.0, 0.0, 0.0, 0.0, clipped_items)
    index = round_half_away(0.95 * (count - 1))
    return weight_stats_from_sums(
        count,
        float(weights.sum()),
        float(np.dot(weights, weights)),
        float(np.partition(weights, index)[index]),
        float(weights.max()),
        clipped_items,
    )


def weight_stats_from_sums(
    count: int, total: float, squares: float, p95: float, max_weight: float, clipped_items: int
) -> dict[str, Any]:
    """`weight_stats` from n, Σw, Σw², the p95 weight (the sorted weight at
    round_half_away(0.95 (n - 1))) and the max (int_recsys_eval__ope_group_sums)."""
    if count == 0:
        return {
            "count": 0, "mean": 0.0, "p95": 0.0, "max": 0.0,
            "effective_sample_size": 0.0, "clipped_fraction": 0.0,
        }  # fmt: skip
    return {
        "count": count,
        "mean": total / count,
        "p95": p95,
        "max": max_weight,
        "effective_sample_size": total * total / squares if squares != 0 else 0.0,
        # the reference's ratio: clipped ITEMS over SAMPLES (can exceed 1 in request unit)
        "clipped_fraction": clipped_items / count,
    }


@dataclass(frozen=True)
class ItemCounts:
    """Item-level counters: sums over int_recsys_eval__ope_rows (one row per exposure row)."""

    listed_items: int  # items within top_k, every status
    sample_items: int
    missing_logging_propensity: int  # skipped silently by the reference
    missing_target_propensity: int
    near_zero_propensity: int
    clipped_items: int
    target_mass: float  # Σ target propensity over listed items with one
    target_mass_without_logging: float  # ... over items without a (positive) logging propensity
    unclipped_weight_sum: float  # over sample items
    unclipped_weight_sq_sum: float


def diagnostics(counts: ItemCounts, samples: int) -> dict[str, Any]:
    """The reference's three counters, then the new ones."""
    k = counts.sample_items
    mean_w = counts.unclipped_weight_sum / k if k else 0.0
    var_w = (counts.unclipped_weight_sq_sum - k * mean_w * mean_w) / (k - 1) if k > 1 else 0.0
    se_w = math.sqrt(max(var_w, 0.0) / k) if k else 0.0
    return {
        "missing_target_propensity": counts.missing_target_propensity,
        "near_zero_propensity": counts.near_zero_propensity,
        "total_items": samples,  # the reference's name: samples, not items, in request unit
        "listed_items": counts.listed_items,
        "sample_items": k,
        "missing_logging_propensity": counts.missing_logging_propensity,
        "clipped_items": counts.clipped_items,
        "clipped_item_fraction": counts.clipped_items / k if k else 0.0,
        "item_weight_mean": mean_w,
        "item_weight_mean_std_error": se_w,
        "target_mass_outside_logging_support": (
            counts.target_mass_without_logging / counts.target_mass if counts.target_mass else 0.0
        ),
    }


def warnings_for(
    stats: dict[str, Any], diag: dict[str, Any], allow_missing_target: bool, min_propensity: float
) -> list[str]:
    """The reference's warnings first, in its order, then the new checks. Each says what to do."""
    out: list[str] = []
    count = stats["count"]
    if stats["clipped_fraction"] > CLIPPING_WARN:
        out.append(
            f"high_clipping_fraction: {stats['clipped_fraction']:.3g} clipped items per sample "
            f"({diag['clipped_items']} of {diag['sample_items']} items): a few samples dominate "
            "and clipping biases the estimate; check the logging propensities, or evaluate a "
            "target policy closer to the logging policy"
        )
    ess = stats["effective_sample_size"]
    if 0 < ess < ESS_WARN * count:
        out.append(
            f"low_effective_sample_size: {ess:.4g} of {count} samples ({ess / count:.1%}): the "
            "weights are very uneven, so the estimate rests on few samples; collect more logs, "
            "clip, or prefer snips / dr and read their confidence intervals"
        )
    if diag["missing_target_propensity"] > 0 and not allow_missing_target:
        out.append(
            f"missing_target_propensity: {diag['missing_target_propensity']} items have no "
            "target_propensity and were skipped, so this is not the policy you meant to "
            "evaluate; log target propensities for every item"
        )
    elif diag["missing_target_propensity"] > 0:
        out.append(
            f"missing_target_propensity: {diag['missing_target_propensity']} items have no "
            "target_propensity and were scored as the logging policy (w = 1) because "
            "allow_missing_target_propensity is on; the estimate mixes in the logging policy"
        )
    if diag["near_zero_propensity"] > 0:
        out.append(
            f"near_zero_propensity: {diag['near_zero_propensity']} propensities below "
            f"{min_propensity:g}: weights explode and the variance with them; check the "
            "propensity logging, or clip"
        )
    if diag["missing_logging_propensity"] > 0:
        out.append(
            f"missing_logging_propensity: {diag['missing_logging_propensity']} listed items have "
            "no logging propensity (or one <= 0) and cannot be weighted; log the propensity of "
            "every shown item (the reference skipped them silently)"
        )
    support = diag["target_mass_outside_logging_support"]
    if support > SUPPORT_WARN:
        out.append(
            f"target_mass_outside_logging_support: {support:.1%} of the target policy's mass is on "
            "listed items without a logging propensity: IPS and SNIPS cannot see rewards there "
            "(biased when they matter); only DM and DR's direct term cover them. If the logging "
            "policy could never show them, the policies lack overlap: keep the target policy "
            "closer to the logging policy's support"
        )
    mean_w, se_w = diag["item_weight_mean"], diag["item_weight_mean_std_error"]
    if diag["sample_items"] > 1 and abs(mean_w - 1) > max(WEIGHT_MEAN_TOLERANCE, 3 * se_w):
        out.append(
            f"weight_mean_off: the mean unclipped importance weight is {mean_w:.4g} "
            f"(standard error {se_w:.2g}); with correct propensities it is about 1: check that "
            "logging and target propensities are probabilities of the same event on the same scale"
        )
    return out
