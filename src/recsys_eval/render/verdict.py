"""The verdict box: what the run decided and why, in one line plus reasons, for every mode."""

from __future__ import annotations

from typing import Any

from recsys_eval.render.document import Tone, Verdict
from recsys_eval.render.numbers import fixed, p_value, signed

ALPHA = 0.05  # the level the interleaving and OPE verdicts use when the report states none
TONES: dict[str, Tone] = {
    "ship": "good",
    "pass": "good",
    "hold": "warn",
    "rollback": "bad",
    "fail": "bad",
}


def verdict_for(report: dict[str, Any]) -> Verdict:
    verdict = _verdict(report)
    warnings = [str(w) for w in report.get("warnings") or []]
    return Verdict(verdict.label, verdict.tone, verdict.headline, verdict.reasons, warnings)


def _verdict(report: dict[str, Any]) -> Verdict:
    mode = report.get("mode", "")
    decision = (report.get("experiment") or {}).get("decision")
    if isinstance(decision, dict):
        return _experiment(decision)
    if mode == "aa-check" and isinstance(report.get("aa_check"), dict):
        return _aa_check(report["aa_check"])
    if mode == "ope" and isinstance(report.get("ope"), dict):
        return _ope(report["ope"], report.get("warnings") or [])
    if mode == "interleaving" and isinstance(report.get("interleaving"), dict):
        return _interleaving(report["interleaving"])
    return _executive(report)


def _experiment(decision: dict[str, Any]) -> Verdict:
    verdict = str(decision.get("verdict") or decision.get("decision") or "unknown")
    reasons = [str(r) for r in decision.get("reasons") or [] if r]
    if not reasons and decision.get("reason"):
        reasons = [str(decision["reason"])]
    if not reasons and verdict == "ship":
        reasons = ["every primary metric improved significantly and every guardrail held"]
    policy = decision.get("policy")
    headline = (
        f"{arm('Candidate', decision.get('candidate_variant', '?'))} vs "
        f"{arm('control', decision.get('control_variant', '?'))}"
        + (f" ({policy} policy)" if policy else "")
    )
    for p in decision.get("primary_metrics") or []:
        reasons.append(
            f"primary {p.get('metric')}: delta {signed(p.get('delta'))}, relative "
            f"{signed(p.get('relative_delta'))} (threshold {fixed(p.get('threshold'))})"
        )
    failed = [
        g
        for g in decision.get("guardrails") or []
        if not g.get("passed", True) and not guardrail_unset(g)
    ]
    for g in failed:
        reasons.append(
            f"guardrail {g.get('metric')} breached: {fixed(g.get('value'))} over "
            f"{fixed(g.get('threshold'))}"
        )
    srm = decision.get("srm")
    if isinstance(srm, dict):
        state = "detected" if srm.get("detected") else "not detected"
        reasons.append(
            f"sample ratio mismatch {state} (p = {p_value(srm.get('p_value'))}, "
            f"alpha {fixed(srm.get('alpha'))})"
        )
    return Verdict(verdict.upper(), TONES.get(verdict, "neutral"), headline, reasons)


def arm(role: str, name: Any) -> str:
    """'control A'; a variant named after its role is named once: 'control', not 'control
    control'."""
    name = str(name)
    return role if name.strip().lower() == role.lower() else f"{role} {name}"


def guardrail_unset(guardrail: dict[str, Any]) -> bool:
    """A guardrail threshold of 0 means "not configured" (the reference's rule, §5.4)."""
    threshold = guardrail.get("threshold")
    return isinstance(threshold, int | float) and not isinstance(threshold, bool) and threshold == 0


def _executive(report: dict[str, Any]) -> Verdict:
    executive = (report.get("summary") or {}).get("executive") or {}
    decision = str(executive.get("decision") or "not_configured")
    if decision == "not_configured":
        return Verdict(
            "NO GATES",
            "neutral",
            "No regression gates were configured, so nothing was decided; the evidence follows.",
            [],
        )
    failures = executive.get("gate_failures") or [
        g for g in report.get("gates") or [] if not g.get("passed", True)
    ]
    gates = report.get("gates") or []
    shown = gates if decision == "pass" else failures
    reasons = [
        f"{g.get('metric')}: {'passed' if g.get('passed') else 'FAILED'}, changed by "
        f"{signed(g.get('delta'), 6)} (allowed drop {fixed(g.get('max_drop'), 6)})"
        for g in shown
    ]
    if decision == "pass":
        headline = f"All {len(gates)} regression gate(s) against the baseline passed."
    else:
        headline = (
            f"{len(failures)} of {len(gates)} regression gate(s) against the baseline failed."
        )
    return Verdict(decision.upper(), TONES.get(decision, "neutral"), headline, reasons)


def _aa_check(aa: dict[str, Any]) -> Verdict:
    total = int(aa.get("total_tests") or 0)
    ok = bool(aa.get("uniformish"))
    reasons = []
    for th in aa.get("thresholds") or []:
        below = sum(
            int(m.get("counts", {}).get(_threshold_key(float(th)), 0)) for m in aa["metrics"]
        )
        reasons.append(
            f"{below} of {total} p-values below {fixed(float(th), 3)} "
            f"(about {fixed(total * float(th), 3)} expected by chance)"
        )
    headline = (
        "The p-values of the A/A comparisons look uniform: no sign of a broken split."
        if ok
        else "Too many A/A comparisons are significant: check the assignment and logging."
    )
    label = "A/A CHECK PASSED" if ok else "A/A CHECK FAILED"
    return Verdict(label, "good" if ok else "bad", headline, reasons)


def _threshold_key(t: float) -> str:
    return f"{t:.6f}".rstrip("0").rstrip(".")


def _ope(ope: dict[str, Any], warnings: list[str]) -> Verdict:
    estimators = [e for e in ope.get("estimators") or [] if isinstance(e, dict)]
    reasons = []
    for e in estimators:
        text = f"{e.get('name')}: {fixed(e.get('value'))}"
        if isinstance(e.get("ci"), dict):
            text += f" [{fixed(e['ci'].get('lower'))}, {fixed(e['ci'].get('upper'))}]"
        elif "std_error" in e:
            text += f" (standard error {fixed(e.get('std_error'))})"
        reasons.append(text)
    ws = ope.get("weight_stats") or {}
    if ws:
        reasons.append(
            f"effective sample size {fixed(ws.get('effective_sample_size'), 2)} of "
            f"{ws.get('count')} samples; clipped fraction {fixed(ws.get('clipped_fraction'))}"
        )
    label = "CHECK WARNINGS" if warnings else "ESTIMATES READY"
    headline = (
        f"Off-policy estimate of the target policy's {ope.get('reward_event', 'reward')} per "
        f"{ope.get('unit', 'sample')}"
    )
    return Verdict(label, "warn" if warnings else "good", headline, reasons)


def _interleaving(il: dict[str, Any]) -> Verdict:
    wins_a, wins_b = int(il.get("wins_a") or 0), int(il.get("wins_b") or 0)
    sign = il.get("sign_test") or {}
    test = "exact sign test" if "p_value_exact" in sign else "sign test, normal approximation"
    p = sign.get("p_value_exact", il.get("p_value"))
    if p is None:  # the reference omits p_value when it is exactly 0
        p = 0.0 if wins_a + wins_b else 1.0
    a, b = il.get("ranker_a", "A"), il.get("ranker_b", "B")
    if float(p) < ALPHA and wins_a != wins_b:
        winner = a if wins_a > wins_b else b
        label, tone = f"{winner} PREFERRED", "good"
        headline = f"Users preferred ranker {winner} (p < {fixed(ALPHA, 2)})."
    else:
        label, tone = "NO CLEAR WINNER", "neutral"
        headline = f"No significant preference between {a} and {b} at {fixed(ALPHA, 2)}."
    reasons = [
        f"{il.get('requests', 0)} requests: {a} won {wins_a}, {b} won {wins_b}, "
        f"{il.get('ties', 0)} ties",
        f"win rate {a} {fixed(il.get('win_rate_a'))}, {b} {fixed(il.get('win_rate_b'))}; "
        f"{test}: p = {p_value(p)}",
    ]
    return Verdict(label, tone, headline, reasons)  # type: ignore[arg-type]
