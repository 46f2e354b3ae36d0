"""Custom experiment metrics (issue 20 item 4): `experiment.metrics`, declared in YAML over the
outcome event types (click, conversion: after the dataset's outcomes.event_types mapping) and the
outcome's value, analysed with the same machinery as the built-in metrics (the per-user delta
method of fct_experiment_metric_tests, CUPED, the family correction, guardrail non-inferiority and
the playbook decision).

    experiment:
      metrics:
        - name: revenue_capped          # [a-z][a-z0-9_]{0,62}, not a built-in metric's name
          type: sum                     # any | count | sum | mean | ratio
          event_type: conversion        # or event_types: [click, conversion]
          unit: user                    # request (default) | user
          cap: {percentile: 0.99}       # or {value: 500}: winsorization of the unit's value
          role: guardrail               # secondary (default) | primary | guardrail
          margin: 0.05                  # guardrail: the non-inferiority margin
          relative: true                # guardrail: margin relative to the control (default false)
          higher_is_better: true        # default true

This module validates the block (errors name the key) and turns it into the dbt var
recsys_eval__experiment_custom_metrics (every value encoded by dbt_vars, read in SQL through
recsys_eval.config_var; names and labels reach SQL only as quoted literals).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from recsys_eval.errors import ConfigError
from recsys_eval.experiment_readout import METRIC_NAMES

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TYPES = ("any", "count", "sum", "mean", "ratio")
UNITS = ("request", "user")
ROLES = ("primary", "secondary", "guardrail")
EVENT_TYPES = ("click", "conversion")  # outcome.v1's event types, after the dataset's mapping
# the names a custom metric may not take: the built-in metrics and the built-in guardrails
RESERVED = (*METRIC_NAMES, "error_rate", "empty_rate", "latency_mean", "latency_p95_ms")

# which keys apply to which type (anything else written for that type is an error, not ignored)
_APPLIES = {
    "any": {"event_type", "event_types", "unit"},
    "count": {"event_type", "event_types", "unit", "cap"},
    "sum": {"event_type", "event_types", "unit", "cap", "value"},
    "mean": {"event_type", "event_types", "value"},
    "ratio": {"numerator", "denominator"},
}
_COMMON = {"name", "type", "label", "role", "margin", "relative", "higher_is_better"}


def _event_types(metric: dict[str, Any], where: str) -> list[str]:
    if "event_type" in metric and "event_types" in metric:
        raise ConfigError(f"{where}: set event_type or event_types, not both")
    raw = metric.get("event_types", [metric["event_type"]] if "event_type" in metric else [])
    if not raw:
        raise ConfigError(
            f"{where}.event_type: required for type {metric['type']} (click or conversion)"
        )
    out: list[str] = []
    for i, name in enumerate(raw):
        key = f"{where}.event_types[{i}]" if "event_types" in metric else f"{where}.event_type"
        if name not in EVENT_TYPES:
            raise ConfigError(
                f"{key}: unknown event type {name!r}: metrics count the outcome contract's types "
                f"({', '.join(EVENT_TYPES)}); map your source's names onto them with the "
                "dataset's outcomes.event_types"
            )
        if name in out:
            raise ConfigError(f"{key}: {name!r} is listed twice")
        out.append(name)
    return out


def _default_label(m: dict[str, Any]) -> str:
    events = " or ".join(m.get("event_types", []))
    if m["type"] == "ratio":
        return f"{m['numerator']} / {m['denominator']}"
    if m["type"] == "mean":
        return f"mean value per {events} event"
    per = m["unit"]
    if m["type"] == "any":
        return f"share of {per}s with a {events}"
    what = f"{events} events" if m["type"] == "count" else f"{events} value"
    capped = " (capped)" if m.get("cap") else ""
    return f"{what} per {per}{capped}"


def validate(exp: dict[str, Any], file: Path | str) -> list[dict[str, Any]]:
    """Check experiment.metrics and return the resolved definitions (defaults filled in and
    named in each entry's `defaults`). Errors name experiment.metrics[i].<key>."""
    raw = exp.get("metrics") or []
    resolved: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, metric in enumerate(raw):
        where = f"{file}: experiment.metrics[{i}]"
        name = metric.get("name")
        if name is None:
            raise ConfigError(f"{where}.name: required")
        if not NAME.match(name):
            raise ConfigError(
                f"{where}.name: {name!r} is not a valid metric name (a lower-case letter, then "
                "lower-case letters, digits or _; at most 63 characters)"
            )
        if name in RESERVED:
            raise ConfigError(
                f"{where}.name: {name!r} is a built-in metric or guardrail; choose another name"
            )
        if name in seen:
            raise ConfigError(
                f"{where}.name: {name!r} is declared twice (also experiment.metrics[{seen[name]}])"
            )
        seen[name] = i
        typ = metric.get("type")
        if typ not in TYPES:
            raise ConfigError(f"{where}.type: must be one of {', '.join(TYPES)}, got {typ!r}")
        extra = sorted(set(metric) - _COMMON - _APPLIES[typ])
        if extra:
            raise ConfigError(f"{where}.{extra[0]}: does not apply to a metric of type {typ}")
        defaults: list[str] = []
        out: dict[str, Any] = {"name": name, "type": typ}
        if typ != "ratio":
            out["event_types"] = _event_types(metric, where)
        if "value" in metric and metric["value"] != "value":
            raise ConfigError(
                f"{where}.value: the only value an outcome has is 'value' (its value field), "
                f"got {metric['value']!r}"
            )
        if typ in ("any", "count", "sum"):
            unit = metric.get("unit")
            if unit is None:
                defaults.append("unit")
                unit = "request"
            if unit not in UNITS:
                raise ConfigError(f"{where}.unit: must be request or user, got {unit!r}")
            out["unit"] = unit
        cap = metric.get("cap")
        if cap is not None:
            if len(cap) != 1:
                raise ConfigError(f"{where}.cap: set exactly one of percentile, value")
            if "percentile" in cap and not 0 < cap["percentile"] < 1:
                raise ConfigError(
                    f"{where}.cap.percentile: must be in (0, 1) (0.99 = the 99th percentile), "
                    f"got {cap['percentile']}"
                )
            if "value" in cap and cap["value"] < 0:
                raise ConfigError(f"{where}.cap.value: must be >= 0, got {cap['value']}")
            out["cap"] = dict(cap)
        if typ == "ratio":
            for key in ("numerator", "denominator"):
                if key not in metric:
                    raise ConfigError(
                        f"{where}.{key}: required for a ratio (a custom metric's name)"
                    )
                out[key] = metric[key]
        role = metric.get("role")
        if role is None:
            defaults.append("role")
            role = "secondary"
        if role not in ROLES:
            raise ConfigError(f"{where}.role: must be one of {', '.join(ROLES)}, got {role!r}")
        out["role"] = role
        if role == "guardrail":
            if "margin" not in metric:
                raise ConfigError(
                    f"{where}.margin: required for a guardrail (the non-inferiority margin, >= 0)"
                )
            if metric["margin"] < 0:
                raise ConfigError(f"{where}.margin: must be >= 0, got {metric['margin']}")
            if "relative" not in metric:
                defaults.append("relative")
            out["margin"] = float(metric["margin"])
            out["relative"] = bool(metric.get("relative", False))
            if out["relative"] and out["margin"] >= 10:
                raise ConfigError(
                    f"{where}.margin: a relative margin is a fraction of the control (0.05 = 5 %), "
                    f"got {metric['margin']}"
                )
        else:
            for key in ("margin", "relative"):
                if key in metric:
                    raise ConfigError(f"{where}.{key}: applies to role: guardrail only")
        if "higher_is_better" not in metric:
            defaults.append("higher_is_better")
        out["higher_is_better"] = bool(metric.get("higher_is_better", True))
        out["defaults"] = defaults
        out["_label"] = metric.get("label")
        resolved.append(out)
    by_name = {m["name"]: m for m in resolved}
    for i, m in enumerate(resolved):
        if m["type"] == "ratio":
            for key in ("numerator", "denominator"):
                part = by_name.get(m[key])
                if part is None or part["type"] not in ("any", "count", "sum"):
                    raise ConfigError(
                        f"{file}: experiment.metrics[{i}].{key}: {m[key]!r} must name a "
                        "custom metric of type any, count or sum declared in experiment.metrics"
                    )
        label = m.pop("_label")
        if label is None:
            m["defaults"].append("label")
            label = _default_label(m)
        m["label"] = label
    primary = [str(p).lower() for p in exp.get("primary_metrics", [])]
    for i, name in enumerate(primary):
        if name in seen and resolved[seen[name]]["role"] == "guardrail":
            raise ConfigError(
                f"{file}: experiment.primary_metrics[{i}]: {name!r} is declared with "
                "role: guardrail"
            )
    return resolved


def definitions(exp: dict[str, Any]) -> list[dict[str, Any]]:
    """The resolved definitions of a config that passed validate() (the report's block)."""
    return validate(exp, "experiment") if exp.get("metrics") else []


def dbt_var(exp: dict[str, Any]) -> list[dict[str, Any]]:
    """recsys_eval__experiment_custom_metrics: the definitions as SQL reads them (flat keys)."""
    out = []
    for m in definitions(exp):
        cap = m.get("cap") or {}
        out.append(
            {
                "name": m["name"],
                "label": m["label"],
                "type": m["type"],
                "event_types": m.get("event_types", []),
                "unit": m.get("unit", "request"),
                "numerator": m.get("numerator", ""),
                "denominator": m.get("denominator", ""),
                "cap_percentile": cap.get("percentile"),
                "cap_value": cap.get("value"),
                "role": m["role"],
                "margin": m.get("margin"),
                "relative": m.get("relative", False),
                "higher_is_better": m["higher_is_better"],
            }
        )
    return out


def primary_names(exp: dict[str, Any]) -> list[str]:
    """The custom metrics declared with role: primary, in order."""
    return [m["name"] for m in definitions(exp) if m["role"] == "primary"]


def names(exp: dict[str, Any]) -> list[str]:
    return [m["name"] for m in definitions(exp)]


def report_block(exp: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's experiment.custom_metrics: each definition as resolved, with the keys the tool
    filled in (`defaults`)."""
    return definitions(exp)
