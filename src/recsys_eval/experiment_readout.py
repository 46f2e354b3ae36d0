"""The playbook's read-out of every defined metric (issue 20 items 1, 7 and 8), from the
aggregates of fct_experiment_metric_tests (the user-level, delta-method tests; sums are in SQL):

- `metric_tests`: per metric and variant, both arms' values, the relative lift with its interval,
  the p-value and the corrected p-value: the numbers the playbook decision reads.
- Bayesian read-out (`experiment.bayesian.enabled`): chance to beat control and expected loss of
  the relative lift under a Gaussian prior on it, GrowthBook's (gbstats 0.8.0) effect model: the
  data give N(relative lift, its delta-method variance); with the default improper (flat) prior the
  posterior is that normal itself, a proper prior N(mean, variance) is combined by precision.
- Duration (`experiment.mde`): the users per arm a two-sided z-test of level alpha needs to detect
  the relative effect `mde` with the given power, from the observed per-user variances, and the
  days still needed at the observed traffic (users of both arms per day).

Pure functions over rows and numbers, tested without a warehouse
(tests/python/test_experiment_readout.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

from recsys_eval.errors import ConfigError

# The names of recsys_eval.experiment_metric_definitions (macros/experiment/experiment_metrics.sql),
# the one definition; a test checks that the two lists agree.
METRIC_NAMES = (
    "ctr",
    "click_share",
    "conversion_rate",
    "conversion_share",
    "revenue_per_request",
    "revenue_per_user",
)
DEFAULT_PRIOR = {"mean": 0.0, "variance": 1.0, "proper": False}  # gbstats' GaussianPrior defaults
DEFAULT_POWER = 0.8
DEFAULT_ALPHA = 0.05


# -- configuration ------------------------------------------------------------------------------


def validate(exp: dict[str, Any], file: Path | str) -> None:
    """experiment.mde, mde_power and bayesian.{enabled, prior}; the errors name the key."""
    mde = exp.get("mde")
    if mde is not None and not (math.isfinite(mde) and mde > 0):
        raise ConfigError(
            f"{file}: experiment.mde: the minimum detectable effect is a relative lift > 0 "
            f"(0.02 = +2 % of the control), got {mde}"
        )
    power = exp.get("mde_power")
    if power is not None and not 0 < power < 1:
        raise ConfigError(f"{file}: experiment.mde_power: must be in (0, 1), got {power}")
    prior = (exp.get("bayesian") or {}).get("prior") or {}
    variance = prior.get("variance")
    if variance is not None and not (math.isfinite(variance) and variance > 0):
        raise ConfigError(
            f"{file}: experiment.bayesian.prior.variance: must be a number > 0, got {variance}"
        )
    mean = prior.get("mean")
    if mean is not None and not math.isfinite(mean):
        raise ConfigError(f"{file}: experiment.bayesian.prior.mean: must be finite, got {mean}")


def bayesian_settings(exp: dict[str, Any]) -> dict[str, Any] | None:
    """The prior in use (gbstats' defaults for what the config does not set), or None when off."""
    block = exp.get("bayesian") or {}
    if not block.get("enabled"):
        return None
    prior = block.get("prior") or {}
    return {
        "mean": float(prior.get("mean", DEFAULT_PRIOR["mean"])),
        "variance": float(prior.get("variance", DEFAULT_PRIOR["variance"])),
        "proper": bool(prior.get("proper", DEFAULT_PRIOR["proper"])),
        "defaults": sorted(k for k in DEFAULT_PRIOR if k not in prior),
    }


# -- Bayesian read-out ---------------------------------------------------------------------------


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _upper(z: float) -> float:
    """P(Z > z) without cancellation."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def posterior(
    lift: float, variance: float, prior: dict[str, Any] | None = None
) -> tuple[float, float]:
    """Mean and standard deviation of the relative lift's posterior: the data N(lift, variance) with
    a flat prior, or combined with a proper N(mean, variance) prior by precision."""
    prior = prior or DEFAULT_PRIOR
    if not prior["proper"]:
        return lift, math.sqrt(variance)
    precision = 1 / variance + 1 / prior["variance"]
    mean = (lift / variance + prior["mean"] / prior["variance"]) / precision
    return mean, math.sqrt(1 / precision)


def bayesian_readout(
    control_mean: float,
    control_variance: float,
    control_n: float,
    variant_mean: float,
    variant_variance: float,
    variant_n: float,
    prior: dict[str, Any] | None = None,
) -> dict[str, float] | None:
    """Chance to beat control P(lift > 0) and expected losses of the relative lift, from each arm's
    mean, per-unit variance and units (gbstats' EffectBayesianABTest, relative, not inverse).
    expected_loss is E[max(0, -lift)], what shipping the variant risks; control_expected_loss is
    E[max(0, lift)], what keeping the control risks. None when the control's mean is 0 or a
    variance or an arm is empty (gbstats' uninformative default)."""
    if control_mean == 0 or control_n <= 0 or variant_n <= 0:
        return None
    if control_variance <= 0 or variant_variance <= 0:
        return None
    lift = (variant_mean - control_mean) / control_mean
    variance = variant_variance / (control_mean**2 * variant_n) + control_variance * (
        variant_mean**2
    ) / (control_mean**4 * control_n)
    mean, sd = posterior(lift, variance, prior)
    z = mean / sd
    chance = _upper(-z)
    return {
        "chance_to_beat_control": chance,
        "expected_loss": sd * _phi(z) - mean * _upper(z),
        "control_expected_loss": sd * _phi(z) + mean * _upper(-z),
        "posterior_mean": mean,
        "posterior_sd": sd,
    }


# -- power and duration --------------------------------------------------------------------------


def required_users(
    control_mean: float,
    control_variance: float,
    variant_variance: float,
    mde: float,
    alpha: float,
    power: float,
    control_share: float = 0.5,
) -> tuple[float, float] | None:
    """Users per arm (variant, control) for a two-sided z-test of level alpha to detect the absolute
    difference mde |control_mean| with the given power, keeping the observed split (control_share
    of the users in the control):
        n1 = (z_{1-alpha/2} + z_power)^2 (s1^2 + s0^2 / r) / delta^2,  n0 = r n1
    with r = control / variant users (the opposite tail's power, below 1e-5 here, is ignored)."""
    delta = mde * abs(control_mean)
    if delta == 0 or not 0 < control_share < 1:
        return None
    ratio = control_share / (1 - control_share)
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    variant_n = z * z * (variant_variance + control_variance / ratio) / (delta * delta)
    return variant_n, ratio * variant_n


def duration(row: dict[str, Any], mde: float, alpha: float, power: float) -> dict[str, Any] | None:
    """The duration estimate of one test row of fct_experiment_metric_tests (both arms' per-user
    variances, users and the days observed): users needed per arm, the days still needed at the
    observed traffic and the relative effect detectable with today's users."""
    users, control_users = int(row["user_count"]), int(row["control_user_count"])
    control_value = float(row["control_value"] or 0.0)
    if users == 0 or control_users == 0 or control_value == 0:
        return None
    v1, v0 = float(row["variant_unit_variance"] or 0.0), float(row["control_unit_variance"] or 0.0)
    need = required_users(
        control_value, v0, v1, mde, alpha, power, control_users / (users + control_users)
    )
    if need is None:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    detectable = z * math.sqrt(v1 / users + v0 / control_users) / abs(control_value)
    out: dict[str, Any] = {
        "mde": mde,
        "alpha": alpha,
        "power": power,
        "required_users": math.ceil(need[0]),
        "required_control_users": math.ceil(need[1]),
        "users": users,
        "control_users": control_users,
        "detectable_relative_lift_now": detectable,
        "reached": users >= need[0] and control_users >= need[1],
    }
    days = float(row.get("observed_days") or 0.0)
    if days > 0:
        per_day = (users + control_users) / days
        remaining = max(0.0, (math.ceil(need[0]) + math.ceil(need[1]) - users - control_users))
        out["observed_days"] = days
        out["users_per_day"] = per_day
        out["days_remaining"] = remaining / per_day
    return out


# -- the report's entries --------------------------------------------------------------------------


def metric_test_entry(
    row: dict[str, Any],
    prior: dict[str, Any] | None,
    mde: float | None,
    alpha: float,
    power: float,
) -> dict[str, Any]:
    """One test of fct_experiment_metric_tests as the report's `metric_tests` entry."""
    entry: dict[str, Any] = {
        "metric": row["metric"],
        "label": row["metric_label"],
        "kind": row["metric_kind"],
        "variant": row["variant"],
        "control_variant": row["control_variant"],
        "primary": bool(row["is_primary"]),
        "users": int(row["user_count"]),
        "control_users": int(row["control_user_count"]),
        "variant_value": float(row["variant_value"] or 0.0),
        "control_value": float(row["control_value"] or 0.0),
        "absolute_lift": float(row["absolute_lift"] or 0.0),
        "significant": bool(row["is_significant"]),
        "correction": row["correction"],
        "test_status": row["test_status"],
    }
    if row["scope"] == "segment":
        entry["segment"] = row["segment_key"]
    if row.get("relative_lift") is not None:
        entry["relative_lift"] = float(row["relative_lift"])
        if row.get("relative_lift_ci_lower") is not None:
            entry["relative_lift_ci"] = {
                "lower": float(row["relative_lift_ci_lower"]),
                "upper": float(row["relative_lift_ci_upper"]),
                "level": float(row["ci_level"]),
            }
    if row.get("absolute_lift_ci_lower") is not None:
        entry["absolute_lift_ci"] = {
            "lower": float(row["absolute_lift_ci_lower"]),
            "upper": float(row["absolute_lift_ci_upper"]),
            "level": float(row["ci_level"]),
        }
    if row.get("p_value") is not None:
        entry["p_value"] = float(row["p_value"])
        entry["adjusted_p_value"] = float(row["adjusted_p_value"])
    if prior is not None:
        readout = bayesian_readout(
            float(row["control_value"] or 0.0),
            float(row["control_unit_variance"] or 0.0),
            int(row["control_user_count"]),
            float(row["variant_value"] or 0.0),
            float(row["variant_unit_variance"] or 0.0),
            int(row["user_count"]),
            prior,
        )
        if readout is not None:
            entry["bayesian"] = readout
    if mde is not None and row["scope"] == "global":
        estimate = duration(row, mde, alpha, power)
        if estimate is not None:
            entry["duration"] = estimate
    return entry


def readout_section(rows: list[dict[str, Any]], exp: dict[str, Any]) -> dict[str, Any]:
    """The report's `readout`: the settings in use (with the defaults named) and every test."""
    prior = bayesian_settings(exp)
    mde = exp.get("mde")
    alpha = float(rows[0]["alpha"]) if rows else DEFAULT_ALPHA
    power = float(exp.get("mde_power") or DEFAULT_POWER)
    section: dict[str, Any] = {
        "analysis": (
            "user-level: each metric is sum(numerator) / sum(denominator) over the arm's users, "
            "with the delta-method variance over users; the playbook decision reads these tests"
        ),
    }
    if prior is not None:
        section["bayesian"] = {
            "prior": {k: prior[k] for k in ("mean", "variance", "proper")},
            "prior_defaults": prior["defaults"],
            "scale": "relative lift",
        }
    if mde is not None:
        section["duration"] = {
            "mde": float(mde),
            "alpha": alpha,
            "power": power,
            "power_default": exp.get("mde_power") is None,
        }
    ordered = sorted(rows, key=lambda r: r["test_position"])
    section["metric_tests"] = [
        metric_test_entry(r, prior, float(mde) if mde is not None else None, alpha, power)
        for r in ordered
    ]
    return section
