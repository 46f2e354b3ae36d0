"""The report's `interleaving` section from the rows of `fct_interleaving_results`.

The reference's fields come first and keep its meaning (§7.3, §8.2): `algorithm`, `ranker_a`,
`ranker_b`, `requests`, `wins_a`, `wins_b`, `ties`, `win_rate_a`, `win_rate_b` and `p_value` (the
normal approximation, omitted when exactly 0). The rest is new: `source`, `sign_test`, `paired`,
`preference`, `health` and `by_segment`.
"""

from __future__ import annotations

from typing import Any

ALGORITHMS = ("team_draft", "balanced", "optimized")
# Health thresholds: a coin that is not fair, teams that do not share the list, rankers that agree
# so often that little can be learned.
FIRST_PICK_MIN_P = 0.001
TEAM_SHARE_TOLERANCE = 0.05
MAX_RANKERS_AGREE_SHARE = 0.5


def simulated_algorithm(configured: str) -> str:
    """The algorithm the simulation runs: the reference runs team draft for any unknown name."""
    name = configured.strip().lower()
    return name if name in ALGORITHMS else "team_draft"


def _statistics(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requests": int(row["requests"]),
        "wins_a": int(row["wins_a"]),
        "wins_b": int(row["wins_b"]),
        "ties": int(row["ties"]),
        "win_rate_a": float(row["win_rate_a"]),
        "win_rate_b": float(row["win_rate_b"]),
    }
    if row["p_value"] != 0:  # omitempty in the reference
        out["p_value"] = float(row["p_value"])
    out["sign_test"] = {
        "trials": int(row["wins_a"]) + int(row["wins_b"]),
        "p_value_exact": float(row["p_value_exact"]),
        "p_value_normal": float(row["p_value"]),
    }
    out["paired"] = {
        "credits_a": int(row["credits_a"]),
        "credits_b": int(row["credits_b"]),
        "competitive_pairs": int(row["competitive_pairs"]),
        "credit_a_per_pair": float(row["credit_a_per_pair"]),
        "credit_b_per_pair": float(row["credit_b_per_pair"]),
        "credit_diff_per_pair": float(row["credit_diff_per_pair"]),
    }
    preference: dict[str, Any] = {
        "users": int(row["users"]),
        "users_engaged": int(row["users_engaged"]),
        "users_prefer_a": int(row["users_prefer_a"]),
        "users_prefer_b": int(row["users_prefer_b"]),
        "users_tied": int(row["users_tied"]),
        "share_a": float(row["preference_share_a"]),
        "p_value_exact": float(row["preference_p_value_exact"]),
    }
    if row["preference_ci_lower"] is not None:
        preference["ci"] = {
            "lower": float(row["preference_ci_lower"]),
            "upper": float(row["preference_ci_upper"]),
            "level": float(row["preference_ci_level"]),
            "replicates": int(row["preference_ci_replicates"]),
        }
    out["preference"] = preference
    out["health"] = health(row)
    return out


def health(row: dict[str, Any]) -> dict[str, Any]:
    """Team balance, first-pick balance and the share of impressions where the rankers agree."""
    team_share = float(row["team_a_item_share"])
    first_p = float(row["first_pick_p_value_exact"])
    out: dict[str, Any] = {
        "team_a_item_share": team_share,
        "first_pick_a_share": float(row["first_pick_a_share"]),
        "first_pick_p_value_exact": first_p,
        "no_click_share": float(row["no_click_share"]),
    }
    checks = [
        {
            "name": "first_pick_balance",
            "value": first_p,
            "threshold": FIRST_PICK_MIN_P,
            "passed": first_p >= FIRST_PICK_MIN_P,
        },
        {
            "name": "team_balance",
            "value": abs(team_share - 0.5),
            "threshold": TEAM_SHARE_TOLERANCE,
            "passed": abs(team_share - 0.5) <= TEAM_SHARE_TOLERANCE or not row["requests"],
        },
    ]
    if row["rankers_agree_share"] is not None:
        agree = float(row["rankers_agree_share"])
        out["rankers_agree_share"] = agree
        checks.append(
            {
                "name": "rankers_agree",
                "value": agree,
                "threshold": MAX_RANKERS_AGREE_SHARE,
                "passed": agree <= MAX_RANKERS_AGREE_SHARE,
            }
        )
    out["checks"] = checks
    return out


def build_section(
    rows: list[dict[str, Any]], configured_algorithm: str, with_segments: bool
) -> dict[str, Any]:
    """The section; `rows` are fct_interleaving_results (scope global and segment)."""
    global_rows = [r for r in rows if r["scope"] == "global"]
    section: dict[str, Any] = {
        "algorithm": configured_algorithm.strip().lower(),
        "ranker_a": "A",
        "ranker_b": "B",
    }
    if global_rows:
        row = global_rows[0]
        section.update(_statistics(row))
        section["source"] = row["source"]
    else:  # no common request: the reference's zero counts, p = 1
        section.update(
            {"requests": 0, "wins_a": 0, "wins_b": 0, "ties": 0, "win_rate_a": 0, "win_rate_b": 0}
        )
        section["p_value"] = 1.0
    if with_segments:
        segments = sorted(
            (r for r in rows if r["scope"] == "segment"), key=lambda r: r["segment_key"]
        )
        if segments:
            section["by_segment"] = {r["segment_key"]: _statistics(r) for r in segments}
    return section


def warnings_for(section: dict[str, Any], configured_algorithm: str) -> list[str]:
    out = []
    name = configured_algorithm.strip().lower()
    if name not in ALGORITHMS:
        out.append(
            f"interleaving_unknown_algorithm: {name!r} is not team_draft, balanced or optimized; "
            "team_draft was simulated (as the reference does)"
        )
    for check in section.get("health", {}).get("checks", []):
        if not check["passed"]:
            out.append(
                f"interleaving_health_{check['name']}: {check['value']:.4g} "
                f"(threshold {check['threshold']:g})"
            )
    return out
