"""The OPE statistics from aggregates: nothing per sample reaches Python.

dbt returns int_recsys_eval__ope_group_sums (one row per scope: the global one and each segment)
and int_recsys_eval__ope_block_sums (one row per bootstrap block, G = min(n, 10000) rows); every
number of the `ope` section is computed from them here. With S segments and G blocks the CLI
fetches (1 + S) rows of 34 numbers (+ scope and key) and G rows of 6: 480,000 bytes of block sums
and 272 bytes per scope at G = 10000, whatever the number of samples.

`from_samples` computes the same aggregates with numpy from per-sample arrays: the reference the
tests check the SQL against, and the way constructed cases reach `plugin.compute`.

Notation (recsys_eval.ope.estimators): w weight, r reward, m model_logged, d model_target,
res = w (r - m), sw = res where w <= tau else 0. Second moments are sums of squared deviations
around the values (two passes, as numpy's), never expanded Σt² - n t̄² (cancellation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from recsys_eval.ope.diagnostics import ItemCounts
from recsys_eval.ope.estimators import SUM_COLUMNS, Estimate, Samples, _contiguous_block_sums


@dataclass(frozen=True)
class GroupSums:
    """The sums of one scope (a column of int_recsys_eval__ope_group_sums each)."""

    samples: int
    clipped_items: int
    sum_weight: float  # Σ w
    sum_weighted_reward: float  # Σ w r
    sum_model_target: float  # Σ d
    sum_weighted_residual: float  # Σ res
    sum_switch_weighted_residual: float  # Σ sw
    sum_dr_terms: float  # Σ (d + res)
    sum_switch_dr_terms: float  # Σ (d + sw)
    ss_ips: float  # Σ (w r - ips)²
    ss_snips: float  # Σ (w r - snips)²  (the reference's variance)
    ss_snips_linear: float  # Σ w² (r - snips)²  (delta method)
    ss_dm: float  # Σ (d - dm)²
    ss_dr: float  # Σ (d + res - dr)²
    ss_switch_dr: float  # Σ (d + sw - switch_dr)²
    sum_sndr_shifted: float  # Σ (l - dm), l = d + (w / w̄)(r - m - c) (= d when w̄ = 0)
    ss_sndr_shifted: float  # Σ (l - dm)²
    sum_weight_squares: float  # Σ w²
    max_weight: float
    p95_weight: float  # the sorted weight at round-half-away(0.95 (n - 1))
    sum_reward: float  # Σ r
    sum_reward_squares: float  # Σ r²
    ss_reward: float  # Σ (r - r̄)²
    sum_model_error_squares: float  # Σ (r - m)²

    def sums_row(self) -> np.ndarray:
        """The SUM_COLUMNS of this scope."""
        return np.array(
            [
                float(self.samples),
                self.sum_weight,
                self.sum_weighted_reward,
                self.sum_model_target,
                self.sum_weighted_residual,
                self.sum_switch_weighted_residual,
            ]
        )


GROUP_FIELDS = tuple(f.name for f in fields(GroupSums))
EMPTY = GroupSums(0, 0, *([0.0] * (len(GROUP_FIELDS) - 2)))
# the columns of int_recsys_eval__ope_block_sums, in SUM_COLUMNS order
BLOCK_COLUMNS = (
    "samples",
    "sum_weight",
    "sum_weighted_reward",
    "sum_model_target",
    "sum_weighted_residual",
    "sum_switch_weighted_residual",
)
ITEM_COLUMNS = (
    "listed_items",
    "sample_items",
    "no_logging_propensity_items",
    "missing_target_propensity_items",
    "near_zero_propensities",
    "diagnostic_clipped_items",
    "target_mass",
    "target_mass_without_logging",
    "unclipped_weight_sum",
    "unclipped_weight_sq_sum",
)


@dataclass(frozen=True)
class OpeAggregates:
    overall: GroupSums
    segments: dict[str, GroupSums]  # by segment key, sorted
    block_sums: np.ndarray  # (G, len(SUM_COLUMNS)), block order

    @property
    def samples(self) -> int:
        return self.overall.samples


# --- reading ------------------------------------------------------------------------------------
def _group(row: dict[str, Any]) -> GroupSums:
    values: list[Any] = []
    for name in GROUP_FIELDS:
        value = row[name]
        if name in ("samples", "clipped_items"):
            values.append(int(value or 0))
        else:
            values.append(0.0 if value is None else float(value))
    return GroupSums(*values)


def read_aggregates(con: Any, schema: str) -> tuple[OpeAggregates, ItemCounts]:
    """The two aggregate tables of `schema` (the intermediate models' schema)."""
    cur = con.execute(
        f"""select scope, segment_key, {", ".join(GROUP_FIELDS)}, {", ".join(ITEM_COLUMNS)}
            from "{schema}".int_recsys_eval__ope_group_sums order by scope, segment_key"""
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    overall = next((r for r in rows if r["scope"] == "global"), None)
    if overall is None:
        raise AssertionError("int_recsys_eval__ope_group_sums has no global row")
    segments = {r["segment_key"]: _group(r) for r in rows if r["scope"] == "segment"}
    blocks = con.execute(
        f"""select {", ".join(BLOCK_COLUMNS)} from "{schema}".int_recsys_eval__ope_block_sums
            order by block_id"""
    ).fetchall()
    block_sums = np.array(blocks, dtype=np.float64).reshape(len(blocks), len(SUM_COLUMNS))
    counts = ItemCounts(
        listed_items=int(overall["listed_items"] or 0),
        sample_items=int(overall["sample_items"] or 0),
        missing_logging_propensity=int(overall["no_logging_propensity_items"] or 0),
        missing_target_propensity=int(overall["missing_target_propensity_items"] or 0),
        near_zero_propensity=int(overall["near_zero_propensities"] or 0),
        clipped_items=int(overall["diagnostic_clipped_items"] or 0),
        target_mass=float(overall["target_mass"] or 0.0),
        target_mass_without_logging=float(overall["target_mass_without_logging"] or 0.0),
        unclipped_weight_sum=float(overall["unclipped_weight_sum"] or 0.0),
        unclipped_weight_sq_sum=float(overall["unclipped_weight_sq_sum"] or 0.0),
    )
    return OpeAggregates(_group(overall), dict(sorted(segments.items())), block_sums), counts


# --- the numpy reference --------------------------------------------------------------------------
def _round_half_away(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def group_from_samples(s: Samples, clipped_items: int, switch_threshold: float) -> GroupSums:
    """GroupSums of one scope's samples, with numpy (two passes)."""
    n = len(s)
    if n == 0:
        return EMPTY
    w, r, m, d = s.weight, s.reward, s.model_logged, s.model_target
    res = w * (r - m)
    sw = np.where(w <= switch_threshold, res, 0.0)
    wr = w * r
    fs = math.fsum
    sum_w, sum_wr, sum_d, sum_res = fs(w), fs(wr), fs(d), fs(res)
    sum_dr, sum_sdr = fs(d + res), fs(d + sw)
    ips, dm, dr, sdr = sum_wr / n, sum_d / n, sum_dr / n, sum_sdr / n
    snips = sum_wr / sum_w if sum_w != 0 else 0.0
    c = sum_res / sum_w if sum_w != 0 else 0.0
    w_bar = sum_w / n
    lin = d + (w / w_bar) * (r - m - c) if w_bar != 0 else d.copy()
    shifted = lin - dm
    r_bar = fs(r) / n
    order = np.sort(w)
    return GroupSums(
        samples=n,
        clipped_items=clipped_items,
        sum_weight=sum_w,
        sum_weighted_reward=sum_wr,
        sum_model_target=sum_d,
        sum_weighted_residual=sum_res,
        sum_switch_weighted_residual=fs(sw),
        sum_dr_terms=sum_dr,
        sum_switch_dr_terms=sum_sdr,
        ss_ips=fs((wr - ips) ** 2),
        ss_snips=fs((wr - snips) ** 2),
        ss_snips_linear=fs((w * (r - snips)) ** 2),
        ss_dm=fs((d - dm) ** 2),
        ss_dr=fs((d + res - dr) ** 2),
        ss_switch_dr=fs((d + sw - sdr) ** 2),
        sum_sndr_shifted=fs(shifted),
        ss_sndr_shifted=fs(shifted**2),
        sum_weight_squares=fs(w * w),
        max_weight=float(order[-1]),
        p95_weight=float(order[_round_half_away(0.95 * (n - 1))]),
        sum_reward=fs(r),
        sum_reward_squares=fs(r * r),
        ss_reward=fs((r - r_bar) ** 2),
        sum_model_error_squares=fs((r - m) ** 2),
    )


def from_samples(
    s: Samples,
    codes: np.ndarray,
    keys: list[str],
    clipped_items: int,
    switch_threshold: float,
    max_blocks: int = 10_000,
    segment_clipped: np.ndarray | None = None,
) -> OpeAggregates:
    """The aggregates of per-sample arrays (segments only with more than one key, as the SQL with
    slice_keys; `segment_clipped` = clipped items per sample, for the segments' counts)."""
    n = len(s)
    blocks = (
        _contiguous_block_sums(s, switch_threshold, min(n, max_blocks))
        if n
        else np.zeros((0, len(SUM_COLUMNS)))
    )
    segments: dict[str, GroupSums] = {}
    if len(keys) > 1:
        for code, key in enumerate(keys):
            mask = codes == code
            part = Samples(
                s.weight[mask], s.reward[mask], s.model_logged[mask], s.model_target[mask]
            )
            clipped = 0 if segment_clipped is None else int(segment_clipped[mask].sum())
            segments[key] = group_from_samples(part, clipped, switch_threshold)
    return OpeAggregates(group_from_samples(s, clipped_items, switch_threshold), segments, blocks)


# --- the statistics -----------------------------------------------------------------------------
def estimates(g: GroupSums, names: tuple[str, ...]) -> list[Estimate]:
    """Point estimates, the reference's variance and standard errors (estimators.estimate's
    formulas, from the sums)."""
    n = g.samples
    sum_w = g.sum_weight

    def mean_type(total: float, ss: float) -> tuple[float, float, float]:
        value = total / n if n else 0.0
        var = ss / (n - 1) if n > 1 else 0.0
        return value, var, (math.sqrt(var / n) if n else 0.0)

    out: list[Estimate] = []
    for name in names:
        if name == "ips":
            value, var, se = mean_type(g.sum_weighted_reward, g.ss_ips)
        elif name == "snips":
            value = g.sum_weighted_reward / sum_w if sum_w != 0 else 0.0
            var = g.ss_snips / (n - 1) if n > 1 else 0.0
            se = math.sqrt(g.ss_snips_linear) / abs(sum_w) if sum_w != 0 else 0.0
        elif name == "dm":
            value, var, se = mean_type(g.sum_model_target, g.ss_dm)
        elif name == "dr":
            value, var, se = mean_type(g.sum_dr_terms, g.ss_dr)
        elif name == "switch_dr":
            value, var, se = mean_type(g.sum_switch_dr_terms, g.ss_switch_dr)
        elif name == "sndr":
            c = g.sum_weighted_residual / sum_w if sum_w != 0 else 0.0
            value = (g.sum_model_target / n if n else 0.0) + c
            var = sndr_ss(g) / (n - 1) if n > 1 else 0.0
            se = math.sqrt(var / n) if n else 0.0
        else:
            from recsys_eval.ope.estimators import ESTIMATORS

            raise ValueError(f"unknown OPE estimator {name!r} (known: {', '.join(ESTIMATORS)})")
        out.append(Estimate(name, value, var, se))
    return out


def sndr_ss(g: GroupSums) -> float:
    """Σ (l - l̄)² from the sums of l - dm (dm is l̄ up to rounding, so nothing cancels)."""
    if g.samples == 0:
        return 0.0
    return max(g.ss_sndr_shifted - g.sum_sndr_shifted * g.sum_sndr_shifted / g.samples, 0.0)


def segment_estimates(groups: list[GroupSums]) -> dict[str, np.ndarray]:
    """estimators.grouped_estimates's output (values per segment from the SUM_COLUMNS sums, standard
    errors) for the segments' GroupSums."""
    from recsys_eval.ope.estimators import values_from_sums

    sums = np.array([g.sums_row() for g in groups]).reshape(len(groups), len(SUM_COLUMNS))
    values = values_from_sums(sums)
    n = sums[:, 0]
    w_sum = sums[:, 1]
    mean_scale = np.where(n > 1, n * (n - 1), 0.0)

    def _se(ss: np.ndarray, scale: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(scale > 0, np.sqrt(ss / np.where(scale > 0, scale, 1.0)), 0.0)

    def col(name: str) -> np.ndarray:
        return np.array([getattr(g, name) for g in groups], dtype=np.float64)

    se = {
        "ips": _se(col("ss_ips"), mean_scale),
        "dm": _se(col("ss_dm"), mean_scale),
        "dr": _se(col("ss_dr"), mean_scale),
        "switch_dr": _se(col("ss_switch_dr"), mean_scale),
        "sndr": _se(np.array([sndr_ss(g) for g in groups], dtype=np.float64), mean_scale),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        se["snips"] = np.where(
            w_sum != 0,
            np.sqrt(col("ss_snips_linear")) / np.abs(np.where(w_sum != 0, w_sum, 1.0)),
            0.0,
        )
    return {
        "n": n,
        **{f"value_{k}": v for k, v in values.items()},
        **{f"se_{k}": v for k, v in se.items()},
    }


def reward_model_r2(g: GroupSums) -> float | None:
    """1 - Σ(r - m)² / Σ(r - r̄)²; None when the rewards are constant."""
    if g.samples == 0 or g.ss_reward == 0:
        return None
    return 1.0 - g.sum_model_error_squares / g.ss_reward
