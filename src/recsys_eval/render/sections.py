"""report.v1 dict -> Document: the reference's Markdown layout (§8.3: header bullets, Executive
Summary, Offline Metrics, Experiment Metrics, Guardrails, Regression Gates, with its decimals)
first, then the sections the reference leaves out (decision, significance, segments, SRM, CUPED,
power, OPE, interleaving, A/A check, data quality). Unknown fields end up in generic tables."""

from __future__ import annotations

from typing import Any

from recsys_eval.redaction import redact
from recsys_eval.render.document import Bullets, Document, Paragraph, Section, Table
from recsys_eval.render.generic import GLOBAL, flatten, leftover_blocks, records_table
from recsys_eval.render.numbers import count, fixed, percent, signed
from recsys_eval.render.sections_artifacts import artifacts_section
from recsys_eval.render.sections_experiment import experiment_sections
from recsys_eval.render.sections_interleaving import interleaving_sections
from recsys_eval.render.sections_offline import offline_sections
from recsys_eval.render.sections_ope import ope_sections
from recsys_eval.render.sections_over_time import over_time_sections
from recsys_eval.render.verdict import verdict_for

ENVELOPE = {
    "run_id",
    "mode",
    "created_at",
    "version",
    "binary_version",
    "git_commit",
    "effective_config",
    "input_dataset_fingerprint",
    "artifacts",
    "summary",
    "offline",
    "experiment",
    "ope",
    "interleaving",
    "aa_check",
    "data_quality",
    "gates",
    "warnings",
}


def build_document(report: dict[str, Any]) -> Document:
    meta = [("Run ID", str(report.get("run_id", ""))), ("Mode", str(report.get("mode", "")))]
    meta.append(("Created At", str(report.get("created_at", ""))))
    meta += case_meta(report.get("summary") or {})
    sections = [executive_section(report)]
    if report.get("warnings"):
        sections.append(
            Section("Warnings", "warnings").add(Bullets([str(w) for w in report["warnings"]]))
        )
    if isinstance(report.get("offline"), dict):
        sections += offline_sections(report["offline"])
    if isinstance(report.get("experiment"), dict):
        sections += experiment_sections(report["experiment"])
        sections += over_time_sections(report["experiment"])
    if report.get("gates"):
        sections.append(gates_section(report["gates"]))
    if isinstance(report.get("ope"), dict):
        sections += ope_sections(report["ope"])
    if isinstance(report.get("interleaving"), dict):
        sections += interleaving_sections(report["interleaving"])
    if isinstance(report.get("aa_check"), dict):
        sections.append(aa_check_section(report["aa_check"]))
    if isinstance(report.get("data_quality"), dict):
        sections.append(data_quality_section(report["data_quality"], report))
    if isinstance(report.get("artifacts"), dict):
        sections.append(artifacts_section(report["artifacts"]))
    sections.append(run_details_section(report))
    return Document("Recsys Eval Report", meta, verdict_for(report), sections)


def case_meta(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """`Cases Evaluated` (the cases the metrics average over) and, when the offline per-case
    metrics average fewer than the kept cases (the trec dialect), `Cases Total` beside it."""
    cases, total = summary.get("cases_evaluated"), summary.get("cases_total")
    if not isinstance(total, int) or total == cases:
        return [("Cases Evaluated", str(cases))] if isinstance(cases, int) and cases > 0 else []
    return [
        ("Cases Evaluated", f"{cases} (the per-case metrics average over these)"),
        ("Cases Total", f"{total} (every kept request: coverage, novelty and diversity use all)"),
    ]


# -- reference sections -------------------------------------------------------------------------


def executive_section(report: dict[str, Any]) -> Section:
    executive = (report.get("summary") or {}).get("executive") or {}
    sec = Section("Executive Summary", "executive-summary")
    gates = str(executive.get("decision") or "not_configured")
    decision = (report.get("experiment") or {}).get("decision")
    lines = []
    # The executive decision is about offline regression gates only: without gates it decides
    # nothing, so it is said in words, and left out next to an experiment's own decision.
    if gates != "not_configured":
        lines.append(f"Decision: {gates} (regression gates against the baseline)")
    elif not isinstance(decision, dict):
        lines.append("Decision: none (no regression gates were configured)")
    if isinstance(decision, dict):
        lines.append(
            f"Experiment decision: {decision.get('verdict') or decision.get('decision')}"
            + (f" ({decision['reason']})" if decision.get("reason") else "")
        )
    sec.add(Bullets(lines))
    highlights = executive.get("highlights") or []
    if highlights:
        sec.add(
            Bullets(
                [f"{h['name']}: {fixed(float(h['value']), 6)}" for h in highlights], "Highlights"
            )
        )
    deltas = executive.get("key_deltas") or []
    if deltas:
        sec.add(
            Bullets(
                [
                    f"{d['name']}: {signed(float(d['delta']), 6)} (before "
                    f"{fixed(float(d['before']), 6)}, after {fixed(float(d['after']), 6)})"
                    for d in deltas
                ],
                "Key Deltas",
            )
        )
    if executive.get("gate_failures"):
        sec.add(records_table(executive["gate_failures"], "Gate failures"))
    if executive.get("next_steps"):
        sec.add(Bullets([str(s) for s in executive["next_steps"]], "Next Steps"))
    known = {"decision", "highlights", "key_deltas", "gate_failures", "next_steps"}
    sec.add(*leftover_blocks(executive, known))
    return sec


def gates_section(gates: list[dict[str, Any]]) -> Section:
    rows = [
        [
            str(g["metric"]),
            fixed(float(g["max_drop"]), 6),
            signed(float(g["delta"]), 6),
            "yes" if g["passed"] else "NO",
        ]
        for g in gates
    ]
    headers = ["Metric", "Max Drop", "Delta", "Passed"]
    if any(g.get("require_significance") for g in gates):  # offline.gates[].require_significance
        headers += ["Needs Significance", "Significant", "Note"]
        for row, g in zip(rows, gates, strict=True):
            needs = bool(g.get("require_significance"))
            row += [
                "yes" if needs else "no",
                ("yes" if g.get("significant") else "no") if needs else "",
                str(g.get("note", "")),
            ]
    return Section("Regression Gates", "gates").add(Table(headers, rows, numeric=(1, 2)))


# -- A/A, data quality, run details -------------------------------------------------------------


def aa_check_section(aa: dict[str, Any]) -> Section:
    sec = Section("A/A Check", "aa-check")
    thresholds = [str(t) for t in aa.get("thresholds") or []]
    keys = [f"{float(t):.6f}".rstrip("0").rstrip(".") for t in aa.get("thresholds") or []]
    sec.add(
        Paragraph(
            f"{aa.get('total_tests', 0)} A/A comparisons; p-values look uniform: "
            f"{'yes' if aa.get('uniformish') else 'NO'} (a threshold fails when more than 2.5x "
            "the expected share of p-values fall below it)."
        )
    )
    rows = [
        [str(m.get("metric")), "segments" if m.get("by_segment") else GLOBAL]
        + [count((m.get("counts") or {}).get(k, 0)) for k in keys]
        for m in aa.get("metrics") or []
    ]
    sec.add(
        Table(
            ["Metric", "Scope", *[f"p < {t}" for t in thresholds]],
            rows,
            numeric=tuple(range(2, 2 + len(keys))),
        )
    )
    sec.add(*leftover_blocks(aa, {"metrics", "thresholds", "total_tests", "uniformish"}))
    return sec


ASSIGNMENT_MODES = ("experiment", "aa-check")  # the modes that read assignments


def data_quality_section(dq: dict[str, Any], report: dict[str, Any] | None = None) -> Section:
    sec = Section("Data Quality and Join Health", "data-quality")
    mode = str((report or {}).get("mode") or "")
    # Other modes never read assignments: the reference still writes their fields, as 0, which
    # would read as "no assignment joined". They are left out and the reason said instead.
    unread = bool(mode) and mode not in ASSIGNMENT_MODES
    fields = [k for k in dq if k == "assignment_completeness"]
    fields += [k for k in dq.get("join_integrity") or {} if k.startswith("assignment")]
    dropped = fields if unread else []
    rows = []
    for key in ("exposure_completeness", "outcome_completeness", "assignment_completeness"):
        block = dq.get(key)
        if isinstance(block, dict) and key not in dropped:
            rows.append(
                [
                    key.removesuffix("_completeness"),
                    count(block.get("total", 0)),
                    count(block.get("missing", 0)),
                    percent(block.get("missing_rate", 0)),
                ]
            )
    if rows:
        sec.add(
            Table(
                ["Source", "Rows", "Missing required fields", "Missing rate"],
                rows,
                "Completeness",
                numeric=(1, 2, 3),
            )
        )
    join = dq.get("join_integrity")
    if isinstance(join, dict):
        sec.add(
            Table(
                ["Join health", "Value"],
                [
                    [k, percent(v) if k.endswith("_rate") else count(v)]
                    for k, v in join.items()
                    if k not in dropped
                ],
                numeric=(1,),
            )
        )
    if dropped:
        supplied = "assignments" in ((report or {}).get("effective_config") or {}).get(
            "dataset", {}
        )
        sec.add(
            Paragraph(
                ("The dataset lists assignments, but " if supplied else "")
                + f"{mode} mode does not read assignments: {_and(dropped)} are not shown "
                "(the JSON report keeps them as 0, as the reference does)."
            )
        )
    checks = dq.get("checks") or []
    if checks:
        sec.add(
            Table(
                ["Check", "Severity", "Failing rows", "Rows", "Failing rate", "What it means"],
                [
                    [
                        str(c.get("check_name")),
                        str(c.get("severity", "")),
                        count(c.get("failing_rows", 0)),
                        count(c.get("total_rows", 0)),
                        percent(c.get("failing_rate", 0), 2),
                        str(c.get("description", "")),
                    ]
                    for c in checks
                ],
                "Checks",
                numeric=(2, 3, 4),
            )
        )
    known = {
        "exposure_completeness",
        "outcome_completeness",
        "assignment_completeness",
        "join_integrity",
        "checks",
    }
    sec.add(*leftover_blocks(dq, known, "Other data quality fields"))
    return sec


def run_details_section(report: dict[str, Any]) -> Section:
    sec = Section("Run Details", "run-details")
    rows = [
        [label, str(report[key])]
        for key, label in (
            ("version", "Report format version"),
            ("binary_version", "recsys-eval version"),
            ("git_commit", "Git commit"),
            ("input_dataset_fingerprint", "Input dataset fingerprint"),
        )
        if report.get(key) not in (None, "")
    ]
    sec.add(Table(["Field", "Value"], rows))
    if isinstance(report.get("effective_config"), dict):
        sec.add(
            Table(
                ["Effective config", "Value"],
                # Redacted again: a report written by the reference or an old version holds
                # DSNs and keys in clear.
                [[k, v] for k, v in flatten(redact(report["effective_config"]))],
                "Effective configuration",
            )
        )
    sec.add(*leftover_blocks(report, ENVELOPE, "Other report fields"))
    return sec


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
