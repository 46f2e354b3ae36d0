"""Interleaving sections: wins, ties, win rates and the sign test, paired credits, per-user
preference, health checks and segments."""

from __future__ import annotations

from typing import Any

from recsys_eval.render.document import Chart, Paragraph, Section, Table
from recsys_eval.render.generic import flatten, leftover_blocks, records_table
from recsys_eval.render.numbers import count, fixed, interval, p_value

# -- interleaving -------------------------------------------------------------------------------

IL_COUNTS = ["requests", "wins_a", "wins_b", "ties", "win_rate_a", "win_rate_b", "p_value"]


def interleaving_sections(il: dict[str, Any]) -> list[Section]:
    a, b = str(il.get("ranker_a", "A")), str(il.get("ranker_b", "B"))
    sec = Section("Interleaving", "interleaving")
    sec.add(
        Paragraph(
            f"Algorithm: {il.get('algorithm', '?')}; ranker A = {a}, ranker B = {b}"
            + (f"; lists from: {il['source']}." if il.get("source") else ".")
        ),
        Table(
            [
                "Requests",
                f"Wins {a}",
                f"Wins {b}",
                "Ties",
                f"Win rate {a}",
                f"Win rate {b}",
                "p-value",
            ],
            [
                [
                    count(il.get("requests", 0)),
                    count(il.get("wins_a", 0)),
                    count(il.get("wins_b", 0)),
                    count(il.get("ties", 0)),
                    fixed(il.get("win_rate_a")),
                    fixed(il.get("win_rate_b")),
                    p_value(il["p_value"]) if "p_value" in il else "0 (omitted)",
                ]
            ],
            numeric=(0, 1, 2, 3, 4, 5, 6),
        ),
        Chart(
            "grouped_bars",
            "Requests won by each ranker",
            {
                "panels": [
                    {
                        "title": "",
                        "categories": [f"{a} wins", "ties", f"{b} wins"],
                        "series": {
                            "requests": [
                                float(il.get("wins_a", 0)),
                                float(il.get("ties", 0)),
                                float(il.get("wins_b", 0)),
                            ]
                        },
                    }
                ]
            },
            alt="requests won by A, tied, and won by B",
        ),
    )
    for key, title in (
        ("sign_test", "Sign test"),
        ("paired", "Paired credits"),
        ("preference", "Per-user preference"),
    ):
        if isinstance(il.get(key), dict):
            sec.add(Table(["Field", "Value"], [[k, v] for k, v in flatten(il[key])], title))
    health = il.get("health")
    if isinstance(health, dict):
        sec.add(
            Table(
                ["Health", "Value"],
                [[k, v] for k, v in flatten({k: v for k, v in health.items() if k != "checks"})],
                "Health",
            )
        )
        if health.get("checks"):
            sec.add(records_table(health["checks"], "Health checks"))
    out = [sec]
    segments = il.get("by_segment") or {}
    if segments:
        out.append(_segments_section(segments, a, b))
    known = {
        "algorithm",
        "ranker_a",
        "ranker_b",
        "source",
        "sign_test",
        "paired",
        "preference",
        "health",
        "by_segment",
        *IL_COUNTS,
    }
    out[-1].add(*leftover_blocks(il, known, "Other interleaving fields"))
    return out


SEGMENT_KNOWN = {*IL_COUNTS, "sign_test", "paired", "preference", "health"}


def _segments_section(segments: dict[str, Any], a: str, b: str) -> Section:
    """One row per segment: wins and tests, per-user preference, paired credits; then one row
    per segment x health check. Unknown fields still get their own tables."""
    seg = Section("Interleaving by Segment", "interleaving-segments")
    rows = []
    for key, v in segments.items():
        sign, pref, paired = (v.get(k) or {} for k in ("sign_test", "preference", "paired"))
        rows.append(
            [
                str(key),
                count(v.get("requests", 0)),
                count(v.get("wins_a", 0)),
                count(v.get("wins_b", 0)),
                count(v.get("ties", 0)),
                fixed(v.get("win_rate_a")),
                fixed(v.get("win_rate_b")),
                p_value(sign.get("p_value_exact", v.get("p_value"))),
                count(pref.get("users_engaged")),
                fixed(pref.get("share_a")),
                interval(pref.get("ci")),
                fixed(paired.get("credit_diff_per_pair")),
            ]
        )
    seg.add(
        Table(
            [
                "Segment",
                "Requests",
                f"Wins {a}",
                f"Wins {b}",
                "Ties",
                f"Win rate {a}",
                f"Win rate {b}",
                "Sign test p",
                "Engaged users",
                f"Preference {a} (share)",
                "Preference CI",
                f"Credit {a} - {b} per pair",
            ],
            rows,
            numeric=(1, 2, 3, 4, 5, 6, 7, 8, 9, 11),
        )
    )
    checks = [
        [
            str(key),
            str(c.get("name")),
            fixed(c.get("value")),
            fixed(c.get("threshold")),
            "yes" if c.get("passed") else "NO",
        ]
        for key, v in segments.items()
        for c in (v.get("health") or {}).get("checks") or []
        if isinstance(c, dict)
    ]
    if checks:
        seg.add(
            Table(
                ["Segment", "Health check", "Value", "Threshold", "Passed"],
                checks,
                "Health checks by segment",
                numeric=(2, 3),
            )
        )
    for key, v in segments.items():
        seg.add(*leftover_blocks(v, SEGMENT_KNOWN, f"Segment {key}"))
    return seg
