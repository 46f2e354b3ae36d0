"""Interleaving sections: wins, ties, win rates and the sign test, paired credits, per-user
preference, health checks and segments."""

from __future__ import annotations

from typing import Any

from recsys_eval.render.document import Chart, Paragraph, Section, Table
from recsys_eval.render.generic import flatten, leftover_blocks, records_table
from recsys_eval.render.numbers import fixed, p_value

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
                    str(il.get("requests", 0)),
                    str(il.get("wins_a", 0)),
                    str(il.get("wins_b", 0)),
                    str(il.get("ties", 0)),
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
        seg = Section("Interleaving by Segment", "interleaving-segments")
        rows = [
            {"segment": key, **{k: v.get(k) for k in IL_COUNTS if k in v}}
            for key, v in segments.items()
        ]
        seg.add(records_table(rows))
        for key, v in segments.items():
            seg.add(*leftover_blocks(v, IL_COUNTS, f"Segment {key}"))
        out.append(seg)
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
