"""The report's `experiment.over_time` and `experiment.sequential` blocks (issue 20 items 5, 6).

The statistics are computed in SQL (fct_experiment_over_time, fct_experiment_sequential_srm); this
module maps experiment.sequential / experiment.over_time to dbt vars and shapes the marts' rows.
Playbook policy only: the reference policy's report keeps exactly the reference's fields.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

OVER_TIME_MARTS = ("fct_experiment_over_time", "fct_experiment_sequential_srm")
BUCKETS = ("hour", "day", "week")
DEFAULT_TUNING_PARAMETER = 5000.0  # GrowthBook's sequential_tuning_parameter
DEFAULT_SRM_CONCENTRATION = 10000.0  # ssrm-test's and GrowthBook's dirichlet_concentration


def sequential_vars(exp: dict[str, Any]) -> dict[str, Any]:
    """dbt vars of experiment.sequential and experiment.over_time (validated by config.py)."""
    seq = exp.get("sequential") or {}
    over = exp.get("over_time") or {}
    return {
        "recsys_eval__experiment_sequential_tuning_parameter": float(
            seq.get("tuning_parameter", DEFAULT_TUNING_PARAMETER)
        ),
        "recsys_eval__experiment_sequential_srm_concentration": float(
            seq.get("srm_concentration", DEFAULT_SRM_CONCENTRATION)
        ),
        "recsys_eval__experiment_over_time_bucket": str(over.get("bucket", "day")).strip().lower(),
    }


def _stamp(epoch_us: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(epoch_us))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _interval(row: dict[str, Any], lower: str, upper: str, level: float) -> dict[str, float] | None:
    if row.get(lower) is None or row.get(upper) is None:
        return None
    return {"lower": float(row[lower]), "upper": float(row[upper]), "level": level}


def _lift_entry(row: dict[str, Any]) -> dict[str, Any]:
    alpha = float(row["alpha"])
    entry: dict[str, Any] = {}
    for kind in ("absolute_lift", "relative_lift"):
        if row.get(kind) is None:
            continue
        entry[kind] = float(row[kind])
        fixed = _interval(row, f"{kind}_ci_lower", f"{kind}_ci_upper", float(row["ci_level"]))
        if fixed:
            entry[f"{kind}_ci"] = fixed
        sequential = _interval(
            row, f"{kind}_sequential_ci_lower", f"{kind}_sequential_ci_upper", 1.0 - alpha
        )
        if sequential:
            entry[f"{kind}_sequential_ci"] = sequential
    if row.get("p_value") is not None:
        entry["p_value"] = float(row["p_value"])
    if row.get("sequential_p_value") is not None:
        entry["sequential_p_value"] = float(row["sequential_p_value"])
        entry["sequential_significant"] = float(row["sequential_p_value"]) < alpha
    return entry


def over_time_blocks(marts: dict[str, list[dict[str, Any]]], exp: dict[str, Any]) -> dict[str, Any]:
    """The `over_time` block (always, on the playbook policy) and the `sequential` block (when
    experiment.sequential.enabled); nothing under the reference policy."""
    policy = str((exp.get("decision") or {}).get("policy", "playbook")).strip().lower()
    if policy == "reference":
        return {}
    rows = sorted(
        marts.get("fct_experiment_over_time", []),
        key=lambda r: (r["bucket_index"], r["metric_position"], not r["is_control"], r["variant"]),
    )
    srm_rows = sorted(
        marts.get("fct_experiment_sequential_srm", []), key=lambda r: r["bucket_index"]
    )
    if not rows:
        return {}
    seq_cfg = exp.get("sequential") or {}
    over_cfg = exp.get("over_time") or {}
    first = rows[0]
    settings: dict[str, Any] = {
        "bucket": first["bucket"],
        "bucket_source": "config" if "bucket" in over_cfg else "default",
        "ci_level": float(first["ci_level"]),
        "sequential_level": 1.0 - float(first["alpha"]),
        "tuning_parameter": float(first["sequential_tuning_parameter"]),
        "tuning_parameter_source": "config" if "tuning_parameter" in seq_cfg else "default",
    }
    series = []
    for r in rows:
        point: dict[str, Any] = {
            "bucket_start": _stamp(r["bucket_start_epoch_us"]),
            "variant": r["variant"],
            "metric": r["metric"],
            "units": int(r["units"]),
            "exposures": int(r["exposures"]),
            "rate": float(r["rate"]) if r["rate"] is not None else None,
        }
        if not r["is_control"]:
            point["control_variant"] = r["control_variant"]
            point.update(_lift_entry(r))
        series.append(point)
    block: dict[str, Any] = {**settings, "series": series}
    out: dict[str, Any] = {"over_time": block}
    if srm_rows:
        last = srm_rows[-1]
        block["sequential_srm"] = {
            "p_value": float(last["sequential_p_value"]),
            "log_bayes_factor": float(last["log_bayes_factor"]),
            "mismatch": bool(last["is_mismatch"]),
            "alpha": float(last["srm_alpha"]),
            "dirichlet_concentration": float(last["dirichlet_concentration"]),
            "series": [
                {
                    "bucket_start": _stamp(r["bucket_start_epoch_us"]),
                    "units": int(r["units"]),
                    "p_value": float(r["sequential_p_value"]),
                }
                for r in srm_rows
            ],
        }
    if seq_cfg.get("enabled"):
        last_index = rows[-1]["bucket_index"]
        latest = [
            {
                "metric": r["metric"],
                "variant": r["variant"],
                "control_variant": r["control_variant"],
                "units": int(r["units"]),
                **_lift_entry(r),
            }
            for r in rows
            if r["bucket_index"] == last_index and not r["is_control"]
        ]
        out["sequential"] = {
            "enabled": True,
            "as_of": _stamp(rows[-1]["bucket_start_epoch_us"]),
            "level": settings["sequential_level"],
            "tuning_parameter": settings["tuning_parameter"],
            "tuning_parameter_source": settings["tuning_parameter_source"],
            "tests": latest,
        }
        srm = block.get("sequential_srm")
        if srm:
            out["sequential"]["srm"] = {k: v for k, v in srm.items() if k != "series"}
    return out


def over_time_warnings(section: dict[str, Any]) -> list[str]:
    """A sequential SRM mismatch, when the sequential read-out is on."""
    srm = (section.get("sequential") or {}).get("srm") or {}
    if not srm.get("mismatch"):
        return []
    return [
        f"sequential_srm_mismatch: the arms' units do not match the expected split "
        f"(sequential p = {srm['p_value']:.3g} < {srm['alpha']:g}, "
        f"ln Bayes factor {srm['log_bayes_factor']:.3g})"
    ]
