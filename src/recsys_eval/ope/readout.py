"""The OPE readout: the logged policy's value beside the estimates, the estimators' disagreement
and effective-sample-size warnings, and the rule-based "which estimate to trust" guidance
(docs/ope.md, "Reading the estimates")."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recsys_eval.ope.estimators import Samples

# Kish's effective sample size (Σw)² / Σw² below this, with at least this many samples, is too few
# for the estimators that weight: their standard errors and intervals rest on a CLT over the
# weighted terms, which needs ~100 effective observations however many samples were logged.
ESS_MIN = 100
# the estimators whose value rests on the importance weights (DM uses the reward model only)
WEIGHTED = ("ips", "snips", "dr", "sndr", "switch_dr")
SELF_NORMALISED = ("snips", "sndr")
MODEL_BASED = ("dr", "sndr", "switch_dr")


def logged_from_sums(
    n: float, total: float, squares: float, z: float, level: float
) -> dict[str, Any]:
    """The on-policy mean reward from n, Σr and Σr²: mean, standard error sqrt(s² / n) with the
    n - 1 sample variance, and the normal interval mean ± z·se."""
    if n <= 0:
        return {"value": 0.0, "std_error": 0.0, "samples": 0,
                "ci": {"lower": 0.0, "upper": 0.0, "level": level, "method": "normal"}}  # fmt: skip
    mean = total / n
    var = max(squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
    se = math.sqrt(var / n)
    return {
        "value": mean,
        "std_error": se,
        "samples": int(n),
        "ci": {"lower": mean - z * se, "upper": mean + z * se, "level": level, "method": "normal"},
    }


def logged_policy(reward: np.ndarray, z: float, level: float) -> dict[str, Any]:
    """The logged policy's value over the estimators' samples: their mean reward (weight 1)."""
    r = np.asarray(reward, dtype=np.float64)
    return logged_from_sums(float(r.shape[0]), math.fsum(r), math.fsum(r * r), z, level)


def logged_by_segment(
    reward: np.ndarray, codes: np.ndarray, n_groups: int, z: float, level: float
) -> list[dict[str, Any]]:
    """logged_policy per segment code, from the per-segment sums of r and r²."""
    n = np.bincount(codes, minlength=n_groups)
    s1 = np.bincount(codes, weights=reward, minlength=n_groups)
    s2 = np.bincount(codes, weights=reward * reward, minlength=n_groups)
    return [
        logged_from_sums(float(n[g]), float(s1[g]), float(s2[g]), z, level) for g in range(n_groups)
    ]


def _bounds(entry: dict[str, Any], z: float) -> tuple[float, float]:
    """The interval the report shows: the bootstrap `ci` when present, else value ± z·std_error."""
    ci = entry.get("ci")
    if isinstance(ci, dict):
        return float(ci["lower"]), float(ci["upper"])
    se = float(entry.get("std_error", 0.0))
    return entry["value"] - z * se, entry["value"] + z * se


def disagreements(entries: list[dict[str, Any]], z: float) -> list[tuple[str, str]]:
    """Pairs of estimators (in report order) whose intervals do not overlap. DM is left out: its
    standard error is conditional on the fitted reward model (zero for a constant model), so its
    interval understates its uncertainty and would flag sampling noise as disagreement."""
    bounds = [(e["name"], *_bounds(e, z)) for e in entries if e["name"] in WEIGHTED]
    out = []
    for i, (a, a_lo, a_hi) in enumerate(bounds):
        for b, b_lo, b_hi in bounds[i + 1 :]:
            if a_hi < b_lo or b_hi < a_lo:
                out.append((a, b))
    return out


def reward_model_r2(s: Samples) -> float | None:
    """1 - Σ(r - m)² / Σ(r - r̄)² of the reward model's prediction m for what was logged; None when
    the rewards are constant."""
    r, m = s.reward, s.model_logged
    total = float(np.dot(r - r.mean(), r - r.mean())) if len(s) else 0.0
    if total == 0:
        return None
    return 1.0 - float(np.dot(r - m, r - m)) / total


def readout_warnings(
    entries: list[dict[str, Any]], stats: dict[str, Any], z: float, level: float
) -> tuple[list[str], list[tuple[str, str]], bool]:
    """The `estimators_disagree` and `ess_too_small_for_estimator` warnings, the disagreeing pairs
    and whether the ESS rule fired."""
    out = []
    pairs = disagreements(entries, z)
    if pairs:
        by_name = {e["name"]: e for e in entries}

        def show(name: str) -> str:
            lo, hi = _bounds(by_name[name], z)
            return f"{name} {by_name[name]['value']:.4g} [{lo:.4g}, {hi:.4g}]"

        shown = "; ".join(f"{show(a)} vs {show(b)}" for a, b in pairs)
        out.append(
            f"estimators_disagree: {level:.0%} intervals do not overlap: {shown}. Do not report "
            "either number alone: check the propensities (weight_mean_off, support), the reward "
            "model (dm / dr lean on it) and clipping (biases ips / snips), and report the range"
        )
    names = [e["name"] for e in entries if e["name"] in WEIGHTED]
    ess, count = float(stats["effective_sample_size"]), int(stats["count"])
    ess_low = bool(names) and count >= ESS_MIN and ess < ESS_MIN
    if ess_low:
        advice = (
            "collect more logs, clip the weights, or evaluate a target closer to the logging policy"
        )
        if "ips" in names:
            advice = "prefer snips / sndr / dr over ips (its variance grows with Σw²); " + advice
        out.append(
            f"ess_too_small_for_estimator: effective sample size {ess:.4g} of {count} samples is "
            f"below {ESS_MIN}, too few for {', '.join(names)} (their intervals assume a normal "
            f"mean over the weighted samples); {advice}"
        )
    return out, pairs, ess_low


def guidance(
    names: tuple[str, ...],
    warning_codes: set[str],
    pairs: list[tuple[str, str]],
    r2: float | None,
) -> dict[str, Any]:
    """Which estimate to trust, by the first rule that applies (docs/ope.md lists them)."""
    ran = set(names)
    has_model = bool(ran & set(MODEL_BASED))
    model_ok = has_model and (r2 is None or r2 > 0)
    unstable = warning_codes & {
        "low_effective_sample_size",
        "ess_too_small_for_estimator",
        "high_clipping_fraction",
        "near_zero_propensity",
    }

    def first(*options: str) -> str | None:
        return next((o for o in options if o in ran), None)

    if pairs:
        listed = ", ".join(f"{a} / {b}" for a, b in pairs)
        return {"trust": None, "rule": "disagreement",
                "text": f"none alone: {listed} disagree beyond their intervals; find the cause "
                        "(see estimators_disagree) before reading any of them"}  # fmt: skip
    if not ran & set(WEIGHTED):
        return {"trust": first("dm"), "rule": "model_only",
                "text": "dm is the only estimate and rests entirely on the reward model; add snips "
                        "or dr to check it against the weights"}  # fmt: skip
    model_note = (
        "no reward model ran (add dr to the estimators)"
        if not has_model or r2 is None  # r2 is None: constant rewards, the model is usable
        else f"the reward model explains nothing of the logged rewards (R² {r2:.3g} <= 0)"
    )
    if unstable:
        why = ", ".join(sorted(unstable))
        if model_ok:
            pick = first("sndr", "dr", "switch_dr")
            text = (
                f"{pick}: the weights are unstable ({why}) and the reward model absorbs their "
                "variance"
            )
        else:
            pick = first("snips", "ips")
            text = f"{pick}: the weights are unstable ({why}) and {model_note}"
            if pick is None:  # only model-based estimators ran and the model is poor
                pick = first(*MODEL_BASED)
                text = (
                    f"{pick}, with care: the weights are unstable ({why}) and {model_note}; "
                    "add snips"
                )
            elif pick == "ips":
                text += "; ips is the riskiest here: add snips"
        return {"trust": pick, "rule": "unstable_weights", "text": text}
    if model_ok:
        pick = first("dr", "sndr", "switch_dr")
        return {"trust": pick, "rule": "model_ok",
                "text": f"{pick}: the weights are healthy and the reward model fits (R² "
                        f"{'n/a' if r2 is None else format(r2, '.3g')}); doubly robust keeps ips's "
                        "unbiasedness with less variance"}  # fmt: skip
    pick = first("snips", "ips")
    text = f"{pick}: the weights are healthy and {model_note}"
    if pick is None:  # only model-based estimators ran and the model is poor
        pick = first(*MODEL_BASED)
        text = f"{pick}, with care: {model_note}; add snips to read the weights alone"
    return {"trust": pick, "rule": "no_usable_model", "text": text}
