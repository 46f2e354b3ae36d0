"""Experiment sections: the decision, the reference's Experiment Metrics and Guardrails tables,
then significance with adjusted p-values and lift intervals (forest plots), segments, SRM,
CUPED and power."""

from __future__ import annotations

from typing import Any

from recsys_eval.render.document import Bullets, Chart, Paragraph, Section, Table
from recsys_eval.render.generic import GLOBAL, flatten, forest_row, leftover_blocks, records_table
from recsys_eval.render.numbers import count, fixed, interval, p_value, percent, signed
from recsys_eval.render.sections_readout import readout_section
from recsys_eval.render.verdict import guardrail_unset

# -- experiment ---------------------------------------------------------------------------------

VARIANT_KNOWN = {
    "variant",
    "exposures",
    "ctr",
    "conversion_rate",
    "revenue_per_request",
    "throughput_rps",
}


def _variant_rows(variants: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            str(v["variant"]),
            count(v.get("exposures", 0)),
            fixed(float(v.get("ctr", 0)), 4),
            fixed(float(v.get("conversion_rate", 0)), 4),
            fixed(float(v.get("revenue_per_request", 0)), 4),
            fixed(float(v.get("throughput_rps", 0)), 4),
        ]
        for v in variants
    ]


VARIANT_HEADERS = ["Variant", "Exposures", "CTR", "CVR", "Revenue/Req", "Throughput RPS"]


def experiment_sections(exp: dict[str, Any]) -> list[Section]:
    out = []
    if isinstance(exp.get("decision"), dict):
        out.append(decision_section(exp["decision"]))
    if isinstance(exp.get("readout"), dict):
        out.append(readout_section(exp["readout"]))
    if isinstance(exp.get("custom_metrics"), list) and exp["custom_metrics"]:
        out.append(custom_metrics_section(exp["custom_metrics"]))
    main = Section("Experiment Metrics", "experiment-metrics")
    if exp.get("experiment_id"):
        main.add(Paragraph(f"Experiment: {exp['experiment_id']}"))
    variants = exp.get("variants") or []
    main.add(Table(VARIANT_HEADERS, _variant_rows(variants), numeric=(1, 2, 3, 4, 5)))
    extra_cols = sorted({k for v in variants for k in v} - VARIANT_KNOWN)
    if extra_cols:
        main.add(
            records_table(
                [
                    {"variant": v["variant"], **{k: v.get(k) for k in extra_cols if k in v}}
                    for v in variants
                ],
                "More variant columns",
            )
        )
    guard = exp.get("guardrails") or {}
    per_variant = guard.get("per_variant") or []
    rows = [
        [
            str(g["variant"]),
            fixed(float(g["latency_p95_ms"]), 2),
            fixed(float(g["error_rate"]), 4),
            fixed(float(g["empty_rate"]), 4),
            "yes" if g["pass_latency"] and g["pass_error_rate"] and g["pass_empty_rate"] else "NO",
        ]
        for g in per_variant
    ]
    out.append(main)
    gsec = Section("Guardrails", "guardrails", level=3).add(
        Table(
            ["Variant", "Latency P95 (ms)", "Error Rate", "Empty Rate", "Pass"],
            rows,
            numeric=(1, 2, 3),
        )
    )
    ni = guard.get("non_inferiority") or []
    if ni:
        gsec.add(
            Table(
                [
                    "Guardrail",
                    "Variant",
                    "Control",
                    "Variant value",
                    "Margin",
                    "p-value",
                    "Non-inferior",
                    "Status",
                ],
                [
                    [
                        str(t.get("guardrail")),
                        str(t.get("variant")),
                        fixed(t.get("control_value")),
                        fixed(t.get("variant_value")),
                        f"{fixed(t.get('margin'))} ({t.get('margin_type', '')})",
                        p_value(t.get("p_value")),
                        "yes" if t.get("non_inferior") else "NO",
                        str(t.get("test_status", "")),
                    ]
                    for t in ni
                ],
                title="Non-inferiority tests against control",
                numeric=(2, 3, 5),
            )
        )
    gsec.add(*leftover_blocks(guard, {"per_variant", "non_inferiority"}))
    out.append(gsec)
    if exp.get("significance"):
        out.append(significance_section(exp["significance"]))
    if exp.get("by_segment"):
        out.append(experiment_segments_section(variants, exp["by_segment"]))
    if isinstance(exp.get("srm"), dict):
        out.append(srm_section(exp["srm"]))
    if isinstance(exp.get("cuped"), dict):
        out.append(cuped_section(exp["cuped"]))
    if isinstance(exp.get("power"), dict):
        out.append(power_section(exp["power"]))
    known = {
        "experiment_id",
        "variants",
        "by_segment",
        "guardrails",
        "cuped",
        "power",
        "over_time",
        "sequential",
        "significance",
        "srm",
        "decision",
        "readout",
        "custom_metrics",
    }
    out[-1].add(*leftover_blocks(exp, known, "Other experiment fields"))
    return out


def _cap_text(cap: Any) -> str:
    if not isinstance(cap, dict):
        return ""
    if "percentile" in cap:
        return f"percentile {cap['percentile']:g}"
    return f"value {cap.get('value', 0):g}"


def custom_metrics_section(metrics: list[dict[str, Any]]) -> Section:
    """experiment.custom_metrics: each custom metric's definition as used (their tests are rows of
    'What to read', the CUPED tests and the guardrail tests)."""
    sec = Section("Custom metrics", "custom-metrics", level=3)
    sec.add(
        Paragraph(
            "Declared in experiment.metrics and analysed like the built-in metrics: per user "
            "with the delta method, corrected with the same family, CUPED when per request, a "
            "non-inferiority test when a guardrail. Defaults column: the keys the tool filled in."
        )
    )
    rows = []
    for m in metrics:
        if not isinstance(m, dict):
            continue
        over = " or ".join(str(e) for e in m.get("event_types") or [])
        if m.get("type") == "ratio":
            over = f"{m.get('numerator')} / {m.get('denominator')}"
        role = str(m.get("role", ""))
        if role == "guardrail":
            kind = "relative" if m.get("relative") else "absolute"
            role += f" (margin {m.get('margin', 0):g} {kind})"
        rows.append(
            [
                str(m.get("name", "")),
                str(m.get("label", "")),
                str(m.get("type", "")),
                over,
                str(m.get("unit", "")),
                _cap_text(m.get("cap")),
                role,
                "yes" if m.get("higher_is_better", True) else "no",
                ", ".join(str(d) for d in m.get("defaults") or []),
            ]
        )
    headers = [
        "Metric",
        "Label",
        "Type",
        "Over",
        "Unit",
        "Cap",
        "Role",
        "Higher is better",
        "Defaults",
    ]
    sec.add(Table(headers, rows))
    return sec


def decision_section(dec: dict[str, Any]) -> Section:
    sec = Section("Decision", "decision")
    verdict = dec.get("verdict") or dec.get("decision")
    sec.add(
        Table(
            ["Field", "Value"],
            [
                ["Verdict", str(verdict)],
                ["Decision (decision.v1)", str(dec.get("decision", ""))],
                ["Policy", str(dec.get("policy", ""))],
                ["Control", str(dec.get("control_variant", ""))],
                ["Candidate", str(dec.get("candidate_variant", ""))],
                ["Data window", _window(dec.get("dataset_window"))],
            ],
        )
    )
    reasons = [str(r) for r in dec.get("reasons") or [] if r] or (
        [str(dec["reason"])] if dec.get("reason") else []
    )
    if reasons:
        sec.add(Bullets(reasons, "Reasons"))
    primary = dec.get("primary_metrics") or []
    if primary:
        sec.add(
            Table(
                ["Primary metric", "Delta", "Relative delta", "Threshold"],
                [
                    [
                        str(p["metric"]),
                        signed(p.get("delta")),
                        signed(p.get("relative_delta")),
                        fixed(p.get("threshold")),
                    ]
                    for p in primary
                ],
                numeric=(1, 2, 3),
            )
        )
    guards = dec.get("guardrails") or []
    if guards:
        sec.add(
            Table(
                ["Guardrail", "Value", "Threshold", "Passed"],
                [
                    [
                        str(g["metric"]),
                        fixed(g.get("value")),
                        "0 (not configured)" if guardrail_unset(g) else fixed(g.get("threshold")),
                        "not configured"
                        if guardrail_unset(g)
                        else ("yes" if g.get("passed") else "NO"),
                    ]
                    for g in guards
                ],
                numeric=(1, 2),
            )
        )
    srm = dec.get("srm")
    if isinstance(srm, dict):
        sec.add(
            Paragraph(
                f"Sample ratio mismatch: {'DETECTED' if srm.get('detected') else 'not detected'}"
                f" (p = {p_value(srm.get('p_value'))}, alpha {fixed(srm.get('alpha'))})."
            )
        )
    known = {
        "decision",
        "verdict",
        "policy",
        "control_variant",
        "candidate_variant",
        "reason",
        "reasons",
        "primary_metrics",
        "guardrails",
        "srm",
        "dataset_window",
    }
    sec.add(*leftover_blocks(dec, known, "Decision details"))
    return sec


def _window(window: Any) -> str:
    if not isinstance(window, dict):
        return ""
    return f"{window.get('start', '')} to {window.get('end', '')}"


def significance_section(tests: list[dict[str, Any]]) -> Section:
    sec = Section("Significance and Lifts", "significance")
    rows = []
    for t in tests:
        adjusted = p_value(t.get("adjusted_p_value")) if "adjusted_p_value" in t else ""
        if adjusted and t.get("correction"):
            adjusted += f" ({t['correction']})"
        rows.append(
            [
                str(t.get("segment", GLOBAL)),
                str(t.get("metric")) + (" (primary)" if t.get("primary") else ""),
                f"{t.get('variant')} vs {t.get('control_variant', 'control')}",
                signed(t.get("absolute_lift")),
                interval(t.get("absolute_lift_ci"), signs=True),
                signed(t.get("relative_lift")) if "relative_lift" in t else "",
                interval(t.get("relative_lift_ci"), signs=True),
                p_value(t.get("p_value")),
                adjusted,
                "yes" if t.get("significant") else "no",
                str(t.get("test_status", "")),
            ]
        )
    sec.add(
        Table(
            [
                "Segment",
                "Metric",
                "Comparison",
                "Lift",
                "Lift CI",
                "Relative lift",
                "Relative CI",
                "p-value",
                "Adjusted p",
                "Significant",
                "Status",
            ],
            rows,
            numeric=(3, 5, 7, 8),
        )
    )
    sec.add(*_how_to_read(tests))
    user_level = [t for t in tests if isinstance(t.get("user_level"), dict)]
    if user_level:
        sec.add(_user_level_table(user_level))
    known_t = {
        "user_level",
        "segment",
        "metric",
        "primary",
        "variant",
        "control_variant",
        "absolute_lift",
        "absolute_lift_ci",
        "relative_lift",
        "relative_lift_ci",
        "p_value",
        "adjusted_p_value",
        "correction",
        "significant",
        "test_status",
    }
    extra = [
        {
            "segment": t.get("segment", GLOBAL),
            "metric": t.get("metric"),
            **{k: v for k, v in t.items() if k not in known_t},
        }
        for t in tests
        if set(t) - known_t
    ]
    if extra:
        sec.add(records_table(extra, "More test fields"))
    for metric in dict.fromkeys(str(t.get("metric")) for t in tests):
        rows_f = [
            forest_row(
                f"{t.get('segment', GLOBAL)} · {t.get('variant')} vs "
                f"{t.get('control_variant', '')}",
                t["absolute_lift"],
                t["absolute_lift_ci"],
                bool(t.get("significant")),
            )
            for t in tests
            if str(t.get("metric")) == metric
            and isinstance(t.get("absolute_lift_ci"), dict)
            and "absolute_lift" in t
        ]
        if rows_f:
            sec.add(
                Chart(
                    "forest",
                    f"Lift in {metric} with confidence interval, per segment",
                    {"rows": rows_f, "zero_line": True, "xlabel": f"absolute lift in {metric}"},
                    alt=f"forest plot of the lift in {metric} per segment",
                )
            )
    return sec


def _excludes_zero(block: Any) -> bool | None:
    if not isinstance(block, dict) or "lower" not in block or "upper" not in block:
        return None
    return float(block["lower"]) > 0 or float(block["upper"]) < 0


def _how_to_read(tests: list[dict[str, Any]]) -> list[Paragraph]:
    """Why a significant p-value can sit next to an interval that covers 0: they are different
    computations, and the decision uses the test."""
    out = [
        Paragraph(
            "The p-value, Adjusted p and Significant columns are the reference's pooled "
            "two-proportion z-test per request (corrected over every test of the table), which "
            "the reference policy's decision uses (the playbook reads the per-user tests of "
            "'What to read' instead); the intervals "
            "are separate estimates (Lift CI: unpooled normal, Relative CI: delta method, "
            "neither corrected for multiple tests), so a significant test can have an interval "
            "that covers 0, or the reverse, most often the relative lift over a small control rate."
        )
    ]
    disagree = []
    for t in tests:
        significant = bool(t.get("significant"))
        for key, label in (("absolute_lift_ci", "lift"), ("relative_lift_ci", "relative lift")):
            excludes = _excludes_zero(t.get(key))
            if excludes is not None and excludes != significant:
                disagree.append(
                    f"{t.get('metric')} {t.get('variant')} vs {t.get('control_variant', 'control')}"
                    f" ({t.get('segment', GLOBAL)}): {label} interval "
                    + (
                        "covers 0 though the test is significant"
                        if significant
                        else "excludes 0 though the test is not significant"
                    )
                )
    if disagree:
        out.append(Paragraph("They disagree here: " + "; ".join(disagree) + "."))
    return out


def _user_level_table(tests: list[dict[str, Any]]) -> Table:
    """The same tests with the variance at the randomization unit (users), one row per test."""
    rows = []
    for t in tests:
        u = t["user_level"]
        rows.append(
            [
                str(t.get("segment", GLOBAL)),
                str(t.get("metric")),
                f"{t.get('variant')} vs {t.get('control_variant', 'control')}",
                count(u.get("users")),
                count(u.get("control_users")),
                interval(u.get("absolute_lift_ci"), signs=True),
                p_value(u.get("p_value")),
                p_value(u.get("adjusted_p_value")) if "adjusted_p_value" in u else "",
                "yes" if u.get("significant") else "no",
                fixed(u.get("design_effect"), 2),
            ]
        )
    return Table(
        [
            "Segment",
            "Metric",
            "Comparison",
            "Users",
            "Control users",
            "Lift CI",
            "p-value",
            "Adjusted p",
            "Significant",
            "Design effect",
        ],
        rows,
        "Per user: the same tests with the variance at the randomization unit",
        numeric=(3, 4, 6, 7, 9),
    )


def experiment_segments_section(
    variants: list[dict[str, Any]], by_segment: dict[str, list[dict[str, Any]]]
) -> Section:
    sec = Section("Metrics by Segment", "experiment-segments")
    rows = [[GLOBAL, *r] for r in _variant_rows(variants)]
    for seg, seg_variants in by_segment.items():
        rows += [[seg, *r] for r in _variant_rows(seg_variants)]
    sec.add(Table(["Segment", *VARIANT_HEADERS], rows, numeric=(2, 3, 4, 5, 6)))
    scopes = {GLOBAL: variants, **by_segment}
    names = sorted({str(v["variant"]) for vs in scopes.values() for v in vs})
    panels = []
    for metric, title in (
        ("ctr", "CTR"),
        ("conversion_rate", "CVR"),
        ("revenue_per_request", "Revenue/Req"),
    ):
        series = {
            name: [
                next((float(v.get(metric, 0)) for v in vs if str(v["variant"]) == name), 0.0)
                for vs in scopes.values()
            ]
            for name in names
        }
        panels.append({"title": title, "categories": list(scopes), "series": series})
    sec.add(
        Chart(
            "grouped_bars",
            "Variant metrics by segment",
            {"panels": panels},
            alt="bars of CTR, CVR and revenue per request for each variant and segment",
        )
    )
    return sec


def srm_section(srm: dict[str, Any]) -> Section:
    sec = Section("Sample Ratio Mismatch", "srm")
    sec.add(
        Paragraph(
            f"Chi-square test of the observed split against the expected shares at alpha "
            f"{fixed(srm.get('alpha'))} (run when at least {srm.get('min_sample', '?')} units)."
        )
    )
    scopes = {}
    if isinstance(srm.get("global"), dict):
        scopes[GLOBAL] = srm["global"]
    scopes.update(srm.get("by_segment") or {})
    rows, charts = [], []
    for scope, entry in scopes.items():
        observed = entry.get("observed") or {}
        expected = entry.get("expected") or {}
        total_obs = sum(float(v) for v in observed.values())
        total_exp = sum(float(v) for v in expected.values()) or 1.0
        arms = list(dict.fromkeys([*expected, *observed]))
        for arm in arms:
            share = float(expected.get(arm, 0)) / total_exp
            rows.append(
                [
                    scope,
                    str(arm),
                    count(observed.get(arm, 0)),
                    fixed(share * total_obs, 2),
                    percent(float(observed.get(arm, 0)) / total_obs if total_obs else 0.0),
                    percent(share),
                    p_value(entry.get("p_value")),
                    "DETECTED" if entry.get("detected") else "no",
                ]
            )
        charts.append(
            {
                "title": scope,
                "categories": arms,
                "series": {
                    "observed": [float(observed.get(a, 0)) for a in arms],
                    "expected": [float(expected.get(a, 0)) / total_exp * total_obs for a in arms],
                },
            }
        )
    sec.add(
        Table(
            [
                "Scope",
                "Variant",
                "Observed",
                "Expected",
                "Observed share",
                "Expected share",
                "p-value",
                "SRM",
            ],
            rows,
            numeric=(2, 3, 4, 5, 6),
        )
    )
    details = [
        {"scope": scope, **{k: v for k, v in e.items() if k not in ("observed", "expected")}}
        for scope, e in scopes.items()
    ]
    if details:
        sec.add(records_table(details, "Test details"))
    if charts:
        sec.add(
            Chart(
                "grouped_bars",
                "Sample ratio: observed vs expected units",
                {"panels": charts[:6]},
                alt="observed and expected units per variant",
            )
        )
    sec.add(*leftover_blocks(srm, {"alpha", "min_sample", "global", "by_segment"}))
    return sec


def cuped_section(cuped: dict[str, Any]) -> Section:
    sec = Section("CUPED Variance Reduction", "cuped")
    pairs = [(k, v) for k, v in flatten({k: v for k, v in cuped.items() if k != "tests"})]
    sec.add(Table(["Field", "Value"], [[k, v] for k, v in pairs]))
    tests = cuped.get("tests") or []
    if tests:
        sec.add(
            Table(
                [
                    "Segment",
                    "Metric",
                    "Variant",
                    "Adjusted lift",
                    "Lift CI",
                    "p-value",
                    "Adjusted p",
                    "Variance reduction",
                    "Significant",
                ],
                [
                    [
                        str(t.get("segment", GLOBAL)),
                        str(t.get("metric")),
                        str(t.get("variant")),
                        signed(t.get("absolute_lift")),
                        interval(t.get("absolute_lift_ci"), signs=True),
                        p_value(t.get("p_value")),
                        p_value(t.get("adjusted_p_value")) if "adjusted_p_value" in t else "",
                        percent(t.get("variance_reduction")),
                        "yes" if t.get("significant") else "no",
                    ]
                    for t in tests
                ],
                numeric=(3, 5, 6, 7),
            )
        )
    return sec


def power_section(power: dict[str, Any]) -> Section:
    sec = Section("Power Analysis", "power")
    days = power.get("estimated_days")
    sec.add(
        Paragraph(
            f"To detect an absolute change of {fixed(power.get('mde'))} in "
            f"{power.get('metric', '?')} from a baseline of {fixed(power.get('baseline_rate'))} "
            f"with power {fixed(power.get('power'), 2)} at alpha {fixed(power.get('alpha'), 2)}, "
            f"each variant needs {count(power.get('sample_size_per_variant', '?'))} units"
            + (f" (about {fixed(days, 1)} days of traffic)." if days is not None else ".")
        ),
        Table(["Field", "Value"], [[k, v] for k, v in flatten(power)]),
    )
    return sec
