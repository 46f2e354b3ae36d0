"""The experiment's `readout` (recsys_eval.experiment_readout): the user-level test of every defined
metric (what the playbook decides on), the Bayesian chance to beat control and expected loss, and
the time still needed for the configured minimum detectable effect."""

from __future__ import annotations

from typing import Any

from recsys_eval.render.document import Chart, Paragraph, Section, Table
from recsys_eval.render.generic import GLOBAL, forest_row
from recsys_eval.render.numbers import count, fixed, p_value, percent


def _comparison(t: dict[str, Any]) -> str:
    return f"{t.get('variant')} vs {t.get('control_variant', 'control')}"


def _percent_interval(block: Any) -> str:
    """A relative lift's interval in percent, like the lift beside it."""
    if not isinstance(block, dict) or block.get("lower") is None or block.get("upper") is None:
        return ""
    bounds = f"{percent(block['lower'], 2)}, {percent(block['upper'], 2)}"
    return f"[{bounds}] ({fixed(block.get('level'), 2)})"


def readout_section(readout: dict[str, Any]) -> Section:
    sec = Section("What to read: per-user tests of every metric", "readout")
    tests = [t for t in readout.get("metric_tests") or [] if isinstance(t, dict)]
    sec.add(
        Paragraph(
            "Read these numbers. Each metric has one definition (the Label column) and is analysed "
            "per user, the unit that was randomized: the value is the arm's total over its users "
            "divided by its requests (or users), and its uncertainty counts users, not requests, "
            "so heavy users do not make the result look surer than it is. The decision "
            "(playbook policy) uses the Adjusted p and the relative lift here; the Significance "
            "table further down is the reference system's per-request z-test, for comparison."
        )
    )
    rows = [
        [
            str(t.get("segment", GLOBAL)),
            str(t.get("metric")) + (" (primary)" if t.get("primary") else ""),
            str(t.get("label", "")),
            _comparison(t),
            fixed(t.get("control_value")),
            fixed(t.get("variant_value")),
            percent(t.get("relative_lift"), 2) if "relative_lift" in t else "",
            _percent_interval(t.get("relative_lift_ci")),
            p_value(t.get("p_value")),
            p_value(t.get("adjusted_p_value")) if "adjusted_p_value" in t else "",
            "yes" if t.get("significant") else "no",
            f"{count(t.get('users'))} / {count(t.get('control_users'))}",
        ]
        for t in tests
    ]
    sec.add(
        Table(
            [
                "Segment",
                "Metric",
                "Label",
                "Comparison",
                "Control",
                "Variant",
                "Relative lift",
                "Relative CI",
                "p-value",
                "Adjusted p",
                "Significant",
                "Users (variant / control)",
            ],
            rows,
            numeric=(4, 5, 6, 8, 9),
        )
    )
    forest = [
        forest_row(
            f"{t.get('metric')} · {_comparison(t)}",
            t["relative_lift"],
            t["relative_lift_ci"],
            bool(t.get("significant")),
        )
        for t in tests
        if "segment" not in t
        and "relative_lift" in t
        and isinstance(t.get("relative_lift_ci"), dict)
    ]
    if forest:
        sec.add(
            Chart(
                "forest",
                "Relative lift per metric with its per-user confidence interval (whole population)",
                {"rows": forest, "zero_line": True, "xlabel": "relative lift (0.1 = +10 %)"},
                alt="forest plot of the relative lift of every metric",
            )
        )
    if isinstance(readout.get("bayesian"), dict):
        sec.add(*_bayesian_blocks(readout["bayesian"], tests))
    if isinstance(readout.get("duration"), dict):
        sec.add(*_duration_blocks(readout["duration"], tests))
    return sec


def _bayesian_blocks(settings: dict[str, Any], tests: list[dict[str, Any]]) -> list:
    prior = settings.get("prior") or {}
    if prior.get("proper"):
        what = (
            f"a normal prior on the relative lift with mean {fixed(prior.get('mean'))} and "
            f"variance {fixed(prior.get('variance'))}"
        )
    else:
        what = "a flat (uninformative) prior on the relative lift, GrowthBook's default"
    defaults = settings.get("prior_defaults") or []
    note = f" (defaults used for: {', '.join(defaults)})" if defaults else ""
    rows = [
        [
            str(t.get("segment", GLOBAL)),
            str(t.get("metric")),
            _comparison(t),
            percent(t["bayesian"].get("chance_to_beat_control"), 1),
            percent(t["bayesian"].get("expected_loss"), 3),
            percent(t["bayesian"].get("control_expected_loss"), 3),
        ]
        for t in tests
        if isinstance(t.get("bayesian"), dict)
    ]
    return [
        Paragraph(
            f"Bayesian read-out under {what}{note}. Chance to beat control: the probability that "
            "the variant's true value is above the control's. Expected loss: how much relative "
            "lift you lose on average by shipping the variant if it is in fact worse (the "
            "control's column: by keeping the control if the variant is in fact better)."
        ),
        Table(
            [
                "Segment",
                "Metric",
                "Comparison",
                "Chance to beat control",
                "Expected loss (ship)",
                "Expected loss (keep control)",
            ],
            rows,
            "Bayesian read-out",
            numeric=(3, 4, 5),
        ),
    ]


def _duration_blocks(settings: dict[str, Any], tests: list[dict[str, Any]]) -> list:
    power_note = " (default)" if settings.get("power_default") else ""
    rows = []
    for t in tests:
        d = t.get("duration")
        if not isinstance(d, dict):
            continue
        remaining = d.get("days_remaining")
        rows.append(
            [
                str(t.get("metric")),
                _comparison(t),
                f"{count(d.get('users'))} / {count(d.get('required_users'))}",
                f"{count(d.get('control_users'))} / {count(d.get('required_control_users'))}",
                fixed(d.get("users_per_day"), 1),
                "reached" if d.get("reached") else fixed(remaining, 1),
                percent(d.get("detectable_relative_lift_now"), 2),
            ]
        )
    return [
        Paragraph(
            "Power and duration: to detect a relative change of "
            f"{percent(settings.get('mde'), 2)} with power {fixed(settings.get('power'), 2)}"
            f"{power_note} in a two-sided test at alpha {fixed(settings.get('alpha'), 3)} (the "
            "experiment's alpha, not corrected for multiple tests), from the observed per-user "
            "variances; days remaining assume new users keep arriving at the observed rate."
        ),
        Table(
            [
                "Metric",
                "Comparison",
                "Variant users (now / needed)",
                "Control users (now / needed)",
                "Users per day",
                "Days remaining",
                "Detectable now",
            ],
            rows,
            "Run time still needed",
            numeric=(4, 5, 6),
        ),
        Paragraph(
            "Detectable now: the smallest relative change today's users detect with that power."
        ),
    ]
