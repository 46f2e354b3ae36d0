"""`recsys-eval show REPORT`: a readable text summary of a report.v1 JSON file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from recsys_eval.errors import RecsysEvalError
from recsys_eval.render.verdict import arm


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a readable summary of a report JSON")
    p.add_argument("report", type=Path)
    p.set_defaults(func=main)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _ci(block: dict[str, Any] | None) -> str:
    return f"[{block['lower']:+.4f}, {block['upper']:+.4f}]" if block else ""


def _experiment_lines(exp: dict[str, Any] | None) -> list[str]:
    if not exp:
        return []
    lines = ["", f"experiment {exp.get('experiment_id', '')}"]
    decision = exp.get("decision")
    if decision:
        lines.append(
            f"  decision: {decision['verdict'].upper()} ({decision['policy']} policy): "
            f"{decision['candidate_variant']} vs {arm('control', decision['control_variant'])}"
        )
        lines += [f"    - {r}" for r in decision["reasons"]]
    lines.append(f"  {'variant':<10} {'exposures':>9} {'ctr':>8} {'cvr':>8} {'rev/req':>9}")
    for v in exp.get("variants", []):
        lines.append(
            f"  {v['variant']:<10} {v['exposures']:>9} {v['ctr']:>8.4f} "
            f"{v['conversion_rate']:>8.4f} {v['revenue_per_request']:>9.4f}"
        )
    tests = [t for t in exp.get("significance", []) if "segment" not in t]
    if tests:
        lines.append("  lift vs control (global)")
        for t in tests:
            if "p_value" in t:
                p = f"p={t['p_value']:.4f} adj={t.get('adjusted_p_value', 0.0):.4f}"
            else:
                p = t["test_status"]
            flag = "  significant" if t["significant"] else ""
            lines.append(
                f"    {t['variant']} {t['metric']:<16} {t.get('absolute_lift', 0.0):+.4f} "
                f"{_ci(t.get('absolute_lift_ci'))}  {p}{flag}"
            )
    guard = exp.get("guardrails", {}).get("per_variant", [])
    for g in guard:
        failed = [k for k in ("pass_latency", "pass_error_rate", "pass_empty_rate") if not g[k]]
        if failed:
            lines.append(f"  guardrail breach: {g['variant']} {', '.join(f[5:] for f in failed)}")
    srm = exp.get("srm", {}).get("global")
    if srm:
        lines.append(
            f"  SRM: p={srm['p_value']:.4g} observed {srm['observed']} "
            + ("DETECTED" if srm["detected"] else "not detected")
        )
    return lines


def _ope_lines(ope: dict[str, Any] | None) -> list[str]:
    if not ope:
        return []
    ws, diag = ope.get("weight_stats", {}), ope.get("diagnostics", {})
    lines = [
        "",
        f"off-policy evaluation ({ope.get('unit', '?')} unit, reward "
        f"{ope.get('reward_event', '?')}, {ope.get('reward_model', 'reference')} reward model)",
    ]
    for e in ope.get("estimators", []):
        ci = e.get("ci")
        interval = f"  [{ci['lower']:.6f}, {ci['upper']:.6f}] {ci['level']:.0%} CI" if ci else ""
        se = f"  se {e['std_error']:.6f}" if "std_error" in e else ""
        lines.append(f"  {e['name']:<10} {e['value']:.6f}{se}{interval}")
    logged = ope.get("logged_policy")
    if isinstance(logged, dict):
        ci = logged["ci"]
        lines.append(
            f"  {'logged':<10} {logged['value']:.6f}  se {logged['std_error']:.6f}  "
            f"[{ci['lower']:.6f}, {ci['upper']:.6f}] {ci['level']:.0%} CI (on-policy mean)"
        )
    guide = ope.get("guidance")
    if isinstance(guide, dict) and guide.get("text"):
        lines.append(f"  which estimate to trust: {guide['text']}")
    if ws:
        lines.append(
            f"  weights: {ws.get('count', 0)} samples, mean {ws.get('mean', 0):.4f}, p95 "
            f"{ws.get('p95', 0):.4f}, max {ws.get('max', 0):.4f}, ESS "
            f"{ws.get('effective_sample_size', 0):.1f}, clipped {ws.get('clipped_fraction', 0):.3f}"
        )
    if diag:
        lines.append(
            f"  propensities: {diag.get('missing_target_propensity', 0)} missing target, "
            f"{diag.get('missing_logging_propensity', 0)} missing logging, "
            f"{diag.get('near_zero_propensity', 0)} near zero; target mass outside the logging "
            f"support {_pct(diag.get('target_mass_outside_logging_support', 0))}"
        )
    for seg, block in ope.get("by_segment", {}).items():
        values = ", ".join(f"{e['name']} {e['value']:.4f}" for e in block["estimators"])
        lines.append(f"  [{seg}] {values}")
    return lines


def _interleaving_lines(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    lines = [
        "",
        f"interleaving {section.get('algorithm', '')} ({section.get('source', 'simulated')} lists)",
        f"  impressions {section['requests']}: A wins {section['wins_a']}, B wins "
        f"{section['wins_b']}, ties {section['ties']}; win rate A {section['win_rate_a']:.4f}",
    ]
    sign = section.get("sign_test")
    p_normal = section.get("p_value", 0.0)
    if sign:
        lines.append(f"  sign test: exact p={sign['p_value_exact']:.4g}, normal p={p_normal:.4g}")
    pref = section.get("preference")
    if pref:
        ci = pref.get("ci")
        interval = f" [{ci['lower']:.4f}, {ci['upper']:.4f}] {ci['level']:.0%} CI" if ci else ""
        lines.append(
            f"  users preferring A: {pref['share_a']:.4f}{interval} of {pref['users_engaged']} "
            f"engaged users (A {pref['users_prefer_a']}, B {pref['users_prefer_b']}, "
            f"tie {pref['users_tied']})"
        )
    for check in section.get("health", {}).get("checks", []):
        if not check["passed"]:
            lines.append(f"  health check failed: {check['name']} {check['value']:.4g}")
    for seg, block in section.get("by_segment", {}).items():
        lines.append(
            f"  [{seg}] A {block['wins_a']} / B {block['wins_b']} / tie {block['ties']}, "
            f"exact p={block['sign_test']['p_value_exact']:.4g}"
        )
    return lines


def render(report: dict[str, Any]) -> str:
    lines = [
        f"run {report.get('run_id', '?')}  mode {report.get('mode', '?')}  "
        f"created {report.get('created_at', '?')}",
        f"cases evaluated: {report.get('summary', {}).get('cases_evaluated', 0)}",
    ]
    if "cases_total" in report.get("summary", {}):
        lines[-1] += f" (of {report['summary']['cases_total']} kept)"
    executive = report.get("summary", {}).get("executive", {})
    if executive.get("decision") and executive["decision"] != "not_configured":
        lines.append(f"decision: {executive['decision'].upper()}")
        for g in executive.get("gate_failures", []):
            lines.append(
                f"  gate failed: {g['metric']} delta {g['delta']:+.6f} (max drop {g['max_drop']})"
            )
    offline = report.get("offline")
    if offline:
        lines.append("")
        dialect = offline.get("dialect", "reference")
        suffix = f" ({dialect} dialect)" if dialect != "reference" else ""
        lines.append(f"offline metrics{suffix}")
        deltas = {d["name"]: d for d in offline.get("baseline", {}).get("deltas", [])}
        for m in offline.get("metrics", []):
            extra = ""
            if "ci" in m:
                ci = m["ci"]
                extra += f"   [{ci['lower']:.4f}, {ci['upper']:.4f}] {ci['level']:.0%} CI"
            if m["name"] in deltas:
                d = deltas[m["name"]]
                extra += f"   (baseline {d['before']:.6f}, delta {d['delta']:+.6f})"
            lines.append(f"  {m['name']:<16} {m['value']:.6f}{extra}")
        for seg, metrics in offline.get("by_segment", {}).items():
            values = ", ".join(f"{m['name']} {m['value']:.4f}" for m in metrics)
            lines.append(f"  [{seg}] {values}")
    lines += _experiment_lines(report.get("experiment"))
    lines += _ope_lines(report.get("ope"))
    lines += _interleaving_lines(report.get("interleaving"))
    aa = report.get("aa_check")
    if aa:
        lines.append("")
        lines.append(
            f"A/A check: {aa['total_tests']} tests, "
            + ("p-values look uniform" if aa["uniformish"] else "TOO MANY small p-values")
        )
    dq = report.get("data_quality")
    if dq:
        lines.append("")
        lines.append("data quality")
        for name in ("exposure", "outcome", "assignment"):
            block = dq.get(f"{name}_completeness")
            if block:
                lines.append(
                    f"  {name + 's':<12} {block['total']:>8} rows  {block['missing']:>6} missing "
                    f"({_pct(block['missing_rate'])})"
                )
        join = dq.get("join_integrity", {})
        lines.append(
            f"  joins        exposure join rate {_pct(join.get('exposure_join_rate', 0))}, "
            f"outcome join rate {_pct(join.get('outcome_join_rate', 0))}"
        )
        if join.get("assignments_count"):
            lines.append(
                f"               assignments {join['assignments_count']}, assignment join rate "
                f"{_pct(join.get('assignment_join_rate', 0))}"
            )
        if join.get("duplicate_exposure_request_ids"):
            lines.append(
                f"               duplicate exposure request_ids: "
                f"{join['duplicate_exposure_request_ids']} (a logging bug)"
            )
        checks = dq.get("checks", [])
        failing = [c for c in checks if c.get("failing_rows")]
        if checks and not failing:
            lines.append(f"  checks       {len(checks)} run, no findings")
        if failing:
            lines.append("  checks with findings:")
            for c in failing:
                lines.append(
                    f"    [{c['severity']}] {c['check_name']}: {c['failing_rows']} of "
                    f"{c['total_rows']} ({_pct(c['failing_rate'])})"
                )
    if executive.get("next_steps"):
        lines.append("")
        lines.append("next steps")
        lines += [f"  - {s}" for s in executive["next_steps"]]
    if report.get("warnings"):
        lines.append("")
        lines.append("warnings")
        lines += [f"  - {w}" for w in report["warnings"]]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecsysEvalError(f"report not found: {args.report}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecsysEvalError(f"{args.report}: not a JSON report: {exc}") from None
    print(render(report))
    return 0
