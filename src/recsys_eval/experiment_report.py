"""The report's `experiment` and `aa_check` sections and the decision, from the experiment marts.

The statistics are computed in SQL (models/marts/fct_experiment_*); this module only maps the
configuration to dbt vars, shapes the rows the way the reference reports them (§5, §8.2) and
applies the decision rules. Pure functions over rows, so they are tested without a warehouse.
"""

from __future__ import annotations

import json
import math
from statistics import NormalDist
from typing import Any

from recsys_eval import experiment_custom_metrics
from recsys_eval.experiment_readout import METRIC_NAMES, readout_section

CORRECTIONS = ("fdr_bh", "bonferroni", "holm", "none")
PRIMARY_METRICS = ("ctr", "conversion_rate", "revenue_per_request")
TESTED_METRICS = ("ctr", "conversion_rate")
GUARDRAILS = (
    ("latency_p95_ms", "max_latency_p95_ms", "pass_latency"),
    ("error_rate", "max_error_rate", "pass_error_rate"),
    ("empty_rate", "max_empty_rate", "pass_empty_rate"),
)
EXPERIMENT_MARTS = (
    "fct_experiment_variant_metrics",
    "fct_experiment_significance",
    "fct_experiment_srm",
    "fct_experiment_guardrails",
    "fct_experiment_cuped",
    "fct_experiment_cuped_tests",
    "fct_experiment_guardrail_tests",
    "int_recsys_eval__experiment_arms",
    "fct_experiment_decision",
    "fct_experiment_metric_tests",
)
POLICIES = ("playbook", "reference")
# the lift-over-time and sequential marts (experiment_over_time.py reads them)
EXPERIMENT_MARTS += ("fct_experiment_over_time", "fct_experiment_sequential_srm")
# The guardrails tested for non-inferiority against the control (fct_experiment_guardrail_tests)
# and their default margins, the decision playbook's: error rate +0.5 pp and empty rate +1 pp
# (absolute), mean latency +10 % (relative). experiment.guardrails.<name>: {margin, relative,
# enabled} overrides one.
GUARDRAIL_MARGINS: dict[str, dict[str, Any]] = {
    "error_rate": {"margin": 0.005, "relative": False},
    "empty_rate": {"margin": 0.01, "relative": False},
    "latency_mean": {"margin": 0.10, "relative": True},
}


# -- configuration -> dbt vars ------------------------------------------------------------------


def correction_method(exp: dict[str, Any]) -> str:
    """The reference labels every unknown method fdr_bh (§5.6); holm is new."""
    method = str(exp.get("multiple_comparisons", {}).get("method", "fdr_bh")).lower()
    return method if method in CORRECTIONS else "fdr_bh"


def experiment_vars(exp: dict[str, Any]) -> dict[str, Any]:
    guard = exp.get("guardrails", {})
    srm = exp.get("srm", {})
    cuped = exp.get("cuped", {})
    decision = exp.get("decision", {})
    custom = experiment_custom_metrics.names(exp)
    primary = [m.lower() for m in exp.get("primary_metrics", []) if m.lower() in METRIC_NAMES]
    primary += [m for m in decision_metrics(exp) if m in custom and m not in primary]
    alpha = exp.get("multiple_comparisons", {}).get("alpha", 0.05)
    srm_alpha = srm.get("alpha", 0.001)
    covariate = cuped.get("covariate_key") if cuped.get("enabled") else None
    policy = str(decision.get("policy", "playbook")).strip().lower()
    return {
        "recsys_eval__experiment_control_variant": exp.get("control_variant") or None,
        "recsys_eval__experiment_candidate_variant": decision.get("candidate_variant") or None,
        "recsys_eval__experiment_primary_metrics": primary,
        "recsys_eval__experiment_max_latency_p95_ms": guard.get("max_latency_p95_ms", 0),
        "recsys_eval__experiment_max_error_rate": guard.get("max_error_rate", 0),
        "recsys_eval__experiment_max_empty_rate": guard.get("max_empty_rate", 0),
        "recsys_eval__experiment_multiple_comparisons_method": correction_method(exp),
        "recsys_eval__experiment_multiple_comparisons_alpha": alpha if 0 < alpha < 1 else 0.05,
        "recsys_eval__experiment_srm_alpha": srm_alpha if 0 < srm_alpha < 1 else 0.001,
        "recsys_eval__experiment_srm_min_sample": max(0, int(srm.get("min_sample", 100))),
        # a list, not a mapping: a long variant name cannot be a YAML key in dbt's --vars
        "recsys_eval__experiment_srm_expected": [
            {"variant": str(k), "weight": v} for k, v in srm.get("expected", {}).items()
        ],
        "recsys_eval__experiment_cuped_covariate_key": covariate or None,
        "recsys_eval__experiment_guardrail_margins": guardrail_margins(exp),
        # experiment.metrics (experiment_custom_metrics.py): rows of the same marts
        "recsys_eval__experiment_custom_metrics": experiment_custom_metrics.dbt_var(exp),
        # the decision (fct_experiment_decision); aa-check does not validate the policy
        "recsys_eval__experiment_decision_policy": policy if policy in POLICIES else "playbook",
        "recsys_eval__experiment_decision_guardrail_gate": bool(decision.get("guardrail_gate")),
        "recsys_eval__experiment_decision_srm_gate": bool(
            decision.get("srm_gate") or srm.get("gate_enabled")
        ),
        "recsys_eval__experiment_srm_enabled": bool(srm.get("enabled")),
        # every configured name, lower-cased: one the marts do not know reads as 0 (§5.10)
        "recsys_eval__experiment_decision_primary_metrics": decision_metrics(exp),
        "recsys_eval__experiment_decision_primary_thresholds": [
            {"metric": str(k), "threshold": v}
            for k, v in decision.get("primary_thresholds", {}).items()
        ],
    }


def guardrail_margins(exp: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The non-inferiority margins: each guardrail's default unless experiment.guardrails.<name>
    sets it ({margin, relative}) or drops it (enabled: false)."""
    guard = exp.get("guardrails", {})
    out = {}
    for name, default in GUARDRAIL_MARGINS.items():
        block = guard.get(name) or {}
        if block.get("enabled", True) is False:
            continue
        out[name] = {
            "margin": float(block.get("margin", default["margin"])),
            "relative": bool(block.get("relative", default["relative"])),
        }
    return out


def decision_metrics(exp: dict[str, Any]) -> list[str]:
    """The decision's primary metrics: `primary_metrics` lower-cased, then the custom metrics
    declared with role: primary (experiment.metrics), or [ctr] (§5.10)."""
    names = [str(m).lower() for m in exp.get("primary_metrics", [])]
    names += [m for m in experiment_custom_metrics.primary_names(exp) if m not in names]
    return names or ["ctr"]


# -- sections -----------------------------------------------------------------------------------


def _variant_entry(row: dict[str, Any], cuped_active: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "variant": row["variant"],
        "exposures": int(row["exposures"]),
        "clicks": int(row["clicks"]),
        "conversions": int(row["conversions"]),
        "revenue": float(row["revenue"]),
        "ctr": float(row["ctr"]),
        "conversion_rate": float(row["conversion_rate"]),
        "revenue_per_request": float(row["revenue_per_request"]),
    }
    if row.get("throughput_rps"):
        entry["throughput_rps"] = float(row["throughput_rps"])
    if cuped_active and row.get("covariate_exposures"):
        for key in ("ctr_adjusted", "conversion_rate_adjusted"):
            if row.get(key):
                entry[key] = float(row[key])
    if row.get("has_events_above_exposures"):
        entry["events_exceed_exposures"] = True
    return entry


def _significance_entry(row: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "metric": row["metric"],
        "variant": row["variant"],
        "control_variant": row["control_variant"],
        "significant": bool(row["is_significant"]),
        "primary": bool(row["is_primary"]),
        "correction": row["correction"],
        "test_status": row["test_status"],
    }
    if row["scope"] == "segment":
        entry["segment"] = row["segment_key"]
    if row["p_value"] is not None:
        entry["p_value"] = float(row["p_value"])
        if row["adjusted_p_value"]:
            entry["adjusted_p_value"] = float(row["adjusted_p_value"])
    lifts = {
        "absolute_lift": ("absolute_lift", "absolute_lift_ci_lower", "absolute_lift_ci_upper"),
        "relative_lift": ("relative_lift", "relative_lift_ci_lower", "relative_lift_ci_upper"),
    }
    for name, (value, lower, upper) in lifts.items():
        if row.get(value) is not None:
            entry[name] = float(row[value])
            if row.get(lower) is not None and row.get(upper) is not None:
                entry[f"{name}_ci"] = {
                    "lower": float(row[lower]),
                    "upper": float(row[upper]),
                    "level": float(row["ci_level"]),
                }
    if row.get("user_p_value") is not None:
        entry["user_level"] = {
            "users": int(row["user_count"]),
            "control_users": int(row["control_user_count"]),
            "p_value": float(row["user_p_value"]),
            "adjusted_p_value": float(row["user_adjusted_p_value"]),
            "significant": bool(row["user_is_significant"]),
            "absolute_lift_ci": {
                "lower": float(row["user_absolute_lift_ci_lower"]),
                "upper": float(row["user_absolute_lift_ci_upper"]),
                "level": float(row["ci_level"]),
            },
            "design_effect": float(row["user_design_effect"] or 0.0),
        }
    return entry


def _cuped_test_entry(row: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "metric": row["metric"],
        "variant": row["variant"],
        "absolute_lift": float(row["cuped_absolute_lift"]),
        "variance_reduction": float(row["cuped_variance_reduction"] or 0.0),
        "significant": bool(row["cuped_is_significant"]),
    }
    if row["scope"] == "segment":
        entry["segment"] = row["segment_key"]
    if row.get("cuped_p_value") is not None:
        entry["p_value"] = float(row["cuped_p_value"])
        entry["adjusted_p_value"] = float(row["cuped_adjusted_p_value"])
    if row.get("cuped_absolute_lift_ci_lower") is not None:
        entry["absolute_lift_ci"] = {
            "lower": float(row["cuped_absolute_lift_ci_lower"]),
            "upper": float(row["cuped_absolute_lift_ci_upper"]),
            "level": float(row["ci_level"]),
        }
    return entry


def _guardrail_test_entry(row: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "variant": row["variant"],
        "guardrail": row["guardrail"],
        "margin_type": row["margin_type"],
        "margin": float(row["margin"]),
        "variant_value": float(row["variant_value"]),
        "control_value": float(row["control_value"]),
        "non_inferior": bool(row["is_non_inferior"]),
        "test_status": row["test_status"],
    }
    if row.get("p_value") is not None:
        entry["p_value"] = float(row["p_value"])
    return entry


def _srm_entry(rows: list[dict[str, Any]], configured: dict[str, float]) -> dict[str, Any]:
    first = rows[0]
    observed = {r["variant"]: int(r["observed_rows"]) for r in rows if r["observed_rows"]}
    if configured:
        expected = {k: float(v) for k, v in configured.items()}
    else:  # the equal-weight map that was actually used (§5.9)
        expected = {r["variant"]: 1.0 for r in rows if r["observed_rows"]}
    entry: dict[str, Any] = {
        "p_value": float(first["p_value"]),
        "observed": dict(sorted(observed.items())),
        "expected": dict(sorted(expected.items())),
        "detected": bool(first["is_detected"]),
        "sample_size": int(first["sample_size"]),
        "chi_square": float(first["chi_square"] or 0.0),
        "degrees_of_freedom": int(first["degrees_of_freedom"] or 0),
    }
    entry["max_share_deviation"] = float(first.get("max_abs_share_deviation") or 0.0)
    entry["material"] = bool(first.get("is_material_srm"))
    if first.get("holm_p_value") is not None and first["scope"] == "segment":
        entry["holm_p_value"] = float(first["holm_p_value"])
    missing = sorted(r["variant"] for r in rows if r["is_expected_arm_missing"])
    unexpected = sorted(r["variant"] for r in rows if r["is_unexpected_variant"])
    if missing:
        entry["missing_arms"] = missing
    if unexpected:
        entry["unexpected_variants"] = unexpected
    return entry


def srm_section(rows: list[dict[str, Any]], srm_cfg: dict[str, Any]) -> dict[str, Any]:
    by_scope: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["variant"]):
        by_scope.setdefault((row["scope"], row["segment_key"]), []).append(row)
    configured = srm_cfg.get("expected", {})
    glob = by_scope.get(("global", "__all__"))
    section: dict[str, Any] = {
        "alpha": float(glob[0]["alpha"]) if glob else srm_cfg.get("alpha", 0.001),
        "min_sample": int(glob[0]["min_sample"]) if glob else srm_cfg.get("min_sample", 100),
    }
    if glob:
        section["global"] = _srm_entry(glob, configured)
    segments = {
        key: _srm_entry(seg_rows, configured)
        for (scope, key), seg_rows in sorted(by_scope.items())
        if scope == "segment"
    }
    if segments:
        section["by_segment"] = segments
    return section


def power_analysis(power: dict[str, Any] | None) -> dict[str, Any] | None:
    """§5.8, with the exact normal quantile (the reference used Acklam's approximation)."""
    if not power:
        return None
    p0, mde = float(power.get("baseline_rate", 0)), float(power.get("mde", 0))
    alpha, target = float(power.get("alpha", 0.05)), float(power.get("power", 0.8))
    alpha = alpha if 0 < alpha < 1 else 0.05
    target = target if 0 < target < 1 else 0.8
    p1 = p0 + mde
    if not 0 < p0 < 1 or mde <= 0 or not 0 < p1 < 1:
        return None
    z_a = NormalDist().inv_cdf(1 - alpha / 2)
    z_b = NormalDist().inv_cdf(target)
    p_bar = (p0 + p1) / 2
    n = (
        z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
    ) ** 2 / (p1 - p0) ** 2
    out: dict[str, Any] = {
        "metric": str(power.get("metric") or "ctr").lower(),
        "baseline_rate": p0,
        "mde": mde,
        "alpha": alpha,
        "power": target,
        "sample_size_per_variant": math.ceil(n),
    }
    daily = int(power.get("daily_samples", 0) or 0)
    if daily > 0:
        out["estimated_days"] = 2 * out["sample_size_per_variant"] / daily
    return out


def experiment_section(marts: dict[str, list[dict[str, Any]]], exp: dict[str, Any]) -> dict:
    cuped_rows = marts["fct_experiment_cuped"]
    cuped_active = bool(cuped_rows and cuped_rows[0]["is_active"])
    variants = sorted(marts["fct_experiment_variant_metrics"], key=lambda r: r["variant"])
    section: dict[str, Any] = {
        "experiment_id": exp.get("experiment_id", ""),
        "variants": [_variant_entry(r, cuped_active) for r in variants if r["scope"] == "global"],
    }
    by_segment: dict[str, list[dict[str, Any]]] = {}
    for row in variants:
        if row["scope"] == "segment":
            by_segment.setdefault(row["segment_key"], []).append(_variant_entry(row, cuped_active))
    if by_segment:
        section["by_segment"] = dict(sorted(by_segment.items()))
    section["guardrails"] = {
        "per_variant": [
            {
                "variant": r["variant"],
                "latency_p95_ms": float(r["latency_p95_ms"]),
                "error_rate": float(r["error_rate"]),
                "empty_rate": float(r["empty_rate"]),
                "pass_latency": bool(r["pass_latency"]),
                "pass_error_rate": bool(r["pass_error_rate"]),
                "pass_empty_rate": bool(r["pass_empty_rate"]),
            }
            for r in sorted(marts["fct_experiment_guardrails"], key=lambda r: r["variant"])
        ]
    }
    if cuped_active:
        c = cuped_rows[0]
        cuped: dict[str, Any] = {"enabled": True, "covariate_key": c["covariate_key"]}
        for key in ("theta_ctr", "theta_conversion_rate", "coverage_rate"):
            if c[key]:
                cuped[key] = float(c[key])
        section["cuped"] = cuped
    power = power_analysis(exp.get("power"))
    if power:
        section["power"] = power
    tests = sorted(marts["fct_experiment_significance"], key=lambda r: r["test_position"])
    if tests:
        section["significance"] = [_significance_entry(r) for r in tests]
    cuped_tests = sorted(
        marts.get("fct_experiment_cuped_tests", []),
        key=lambda r: (
            r["scope"] != "global",
            r["segment_key"],
            r["variant"],
            r["metric_position"],
        ),
    )
    if cuped_active and cuped_tests:
        section["cuped"]["tests"] = [_cuped_test_entry(r) for r in cuped_tests]
    guardrail_tests = sorted(
        marts.get("fct_experiment_guardrail_tests", []),
        key=lambda r: (r["variant"], r["guardrail_position"]),
    )
    if guardrail_tests:
        section["guardrails"]["non_inferiority"] = [
            _guardrail_test_entry(r) for r in guardrail_tests
        ]
    if exp.get("srm", {}).get("enabled"):
        section["srm"] = srm_section(marts["fct_experiment_srm"], exp["srm"])
    if marts.get("fct_experiment_metric_tests"):
        # the user-level tests of every defined metric, the Bayesian read-out and the duration
        section["readout"] = readout_section(marts["fct_experiment_metric_tests"], exp)
    if exp.get("metrics"):
        # experiment.metrics as resolved: their tests are rows of readout, cuped and guardrails
        section["custom_metrics"] = experiment_custom_metrics.report_block(exp)
    return section


def experiment_highlights(section: dict[str, Any]) -> list[dict[str, Any]]:
    """§8.4: ctr, conversion_rate and revenue_per_request of the variant with most exposures."""
    if not section["variants"]:
        return []
    top = sorted(section["variants"], key=lambda v: (-v["exposures"], v["variant"]))[0]
    return [{"name": m, "value": top[m]} for m in PRIMARY_METRICS]


def experiment_warnings(section: dict[str, Any]) -> list[str]:
    out = []
    for test in section.get("significance", []):
        if test["test_status"] == "pooled_rate_above_one":
            where = f" segment {test['segment']}" if "segment" in test else ""
            out.append(
                f"experiment_test_not_a_proportion: {test['metric']} {test['variant']}{where}: "
                "more events than exposures, no z-test (the reference aborted with NaN)"
            )
    srm = section.get("srm", {}).get("global", {})
    if srm.get("detected"):
        out.append(f"srm_detected: p={srm['p_value']:.3g}; stop interpreting the metrics")
    for arm in srm.get("missing_arms", []):
        out.append(f"srm_missing_arm: {arm} is expected but has no assignment rows")
    for variant in srm.get("unexpected_variants", []):
        out.append(f"srm_unexpected_variant: {variant} has rows but no expected weight")
    return out


# -- the choice of control ---------------------------------------------------------------------

CONTROL_NAMES = ("control", "ctrl", "baseline")


def control_choice_warnings(arms: list[dict[str, Any]], exp: dict[str, Any]) -> list[str]:
    """Say which arm was taken as control when `experiment.control_variant` does not choose one,
    and refuse (ConfigError) the choices that are likely the wrong way round: the two biggest arms
    tie in exposures, or an arm named like a control (control, ctrl, baseline; any case) is not
    the biggest. `arms` are the rows of int_recsys_eval__experiment_arms, whose control is the
    configured variant when it has exposures, else the one with the most (reference §5.5)."""
    from recsys_eval.errors import ConfigError

    observed = sorted(
        (r for r in arms if r["is_observed"]), key=lambda r: (-int(r["exposures"]), r["variant"])
    )
    if not observed:
        return []
    configured = exp.get("control_variant") or ""
    if configured and any(r["variant"] == configured for r in observed):
        return []  # chosen by the config
    sizes = ", ".join(f"{r['variant']!r} {int(r['exposures'])}" for r in observed)
    advice = "set experiment.control_variant to choose"
    if configured:
        why = f"control_variant {configured!r} has no assigned exposures"
    else:
        why = "control_variant not set"
    top = observed[0]
    if len(observed) > 1 and int(observed[1]["exposures"]) == int(top["exposures"]):
        tied = [r["variant"] for r in observed if int(r["exposures"]) == int(top["exposures"])]
        raise ConfigError(
            f"{why} and the arms tie in exposures ({sizes}): cannot tell which of "
            f"{', '.join(repr(v) for v in tied)} is the control; {advice}"
        )
    named = [r for r in observed[1:] if str(r["variant"]).strip().lower() in CONTROL_NAMES]
    if named:
        biggest = repr(top["variant"])
        raise ConfigError(
            f"{why}: the arm {named[0]['variant']!r} is named like a control but {biggest} has "
            f"more exposures ({sizes}), so {biggest} would be taken as control; {advice}"
        )
    if len(observed) == 1:
        detail = f"the only arm: {int(top['exposures'])} exposures"
    else:
        others = ", ".join(f"{int(r['exposures'])} for {r['variant']!r}" for r in observed[1:])
        detail = f"most exposures: {int(top['exposures'])} vs {others}"
    return [f"{why}: took {top['variant']!r} as control ({detail}); {advice}"]


# -- A/A check ----------------------------------------------------------------------------------


def _threshold_key(t: float) -> str:
    return f"{t:.6f}".rstrip("0").rstrip(".")


def aa_check_section(tests: list[dict[str, Any]], thresholds: list[float]) -> dict[str, Any]:
    """§5.12 over the raw p-values (tests without a p-value are left out)."""
    with_p = [t for t in tests if t["p_value"] is not None]
    metrics = []
    for metric in sorted({t["metric"] for t in with_p}):
        for by_segment in (False, True):
            ps = [
                float(t["p_value"])
                for t in with_p
                if t["metric"] == metric and (t["scope"] == "segment") == by_segment
            ]
            counts = {_threshold_key(th): sum(1 for p in ps if p < th) for th in thresholds}
            metrics.append({"metric": metric, "by_segment": by_segment, "counts": counts})
    total = len(with_p)
    uniformish = all(
        sum(1 for t in with_p if float(t["p_value"]) < th) <= 2.5 * total * th
        for th in thresholds
        if total * th >= 1
    )
    return {
        "metrics": metrics,
        "thresholds": list(thresholds),
        "total_tests": total,
        "uniformish": uniformish,
    }


# -- decision ---------------------------------------------------------------------------------


def decide(
    row: dict[str, Any], exp: dict[str, Any], metric_tests: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The decision document (decision.v1 fields plus `policy`, `verdict` and `reasons`) from the
    one row of fct_experiment_decision, where the rules are (README "Did B win? One query"):

    policy `reference` (§5.10): a primary metric below its threshold -> fail; a candidate
    guardrail breach with guardrail_gate -> hold; SRM with the SRM gate -> hold; else ship.
    policy `playbook` (default; the product docs' decision policy): join rate below 95 % -> hold;
    SRM detected -> hold; candidate guardrail breach -> rollback; a primary metric significantly
    worse -> rollback; every primary metric significantly better with a relative lift of at
    least its threshold -> ship, unless a guardrail's non-inferiority test against control
    fails (-> hold); otherwise hold. `decision` keeps decision.v1's values
    (rollback is written as fail); `verdict` says ship, hold or rollback.
    """
    thresholds = {
        str(k): float(v) for k, v in exp.get("decision", {}).get("primary_thresholds", {}).items()
    }
    # a custom primary metric's deltas: its global test of the candidate (metric tests mart)
    custom = {
        r["metric"]: r
        for r in metric_tests or []
        if r["scope"] == "global"
        and r["variant"] == row["candidate_variant"]
        and r["metric"] in experiment_custom_metrics.names(exp)
    }
    primary = []
    for metric in decision_metrics(exp):
        known = metric in METRIC_NAMES  # any other name reads as 0 on both sides
        delta = float(row[f"{metric}_delta"]) if known else 0.0
        relative = float(row[f"{metric}_relative_delta"]) if known else 0.0
        if metric in custom and row["policy"] == "playbook":
            test = custom[metric]
            delta = float(test["variant_value"] or 0.0) - float(test["control_value"] or 0.0)
            relative = delta / float(test["control_value"]) if test["control_value"] else 0.0
        primary.append(
            {
                "metric": metric,
                "delta": delta,
                "relative_delta": relative,
                "threshold": thresholds.get(metric, 0.0),
            }
        )
    guardrails = [
        {
            "metric": value_key,
            "value": float(row[f"candidate_{value_key}"]),
            "threshold": float(row[threshold_key]),
            "passed": bool(row[pass_key]),
        }
        for value_key, threshold_key, pass_key in GUARDRAILS
    ]
    decision: dict[str, Any] = {
        "decision": row["decision"],
        "reason": row["reason"],
        "control_variant": row["control_variant"],
        "candidate_variant": row["candidate_variant"],
        "primary_metrics": primary,
        "guardrails": guardrails,
        "thresholds": thresholds,
    }
    if row["is_srm_reported"]:
        decision["srm"] = {
            "detected": bool(row["is_srm_detected"]),
            "p_value": float(row["srm_p_value"]),
            "alpha": float(row["srm_alpha"]),
        }
    decision["policy"] = row["policy"]
    decision["verdict"] = row["verdict"]
    decision["reasons"] = json.loads(row["reasons_json"])
    return decision
