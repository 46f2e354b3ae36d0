"""Interleaving statistics against independent references, on logged lists (one dbt build):

- the exact sign test against scipy.stats.binomtest and the reference's normal approximation
  against scipy.stats.norm, over a grid of win counts (one segment per count);
- the first-pick (coin) balance test against binomtest;
- the preference share's Poisson bootstrap interval against tests/python/bootstrap_reference.py;
- a simulated user with a known preference: items with a true relevance, ranker A sorts by it
  (with a little noise), ranker B at random; the lists are team-draft interleaved by the Python
  reference with our hash coin, clicks come from a position-based click model; the SQL credit
  equals the Python tally exactly and recovers the preference for A (significant, interval above
  1/2), while a null world (both rankers equally good) shows none.
"""

from __future__ import annotations

import math
import random

import duckdb
import numpy as np
import pytest
from bootstrap_reference import interval
from dbt_helpers import RAW_DDL, run_dbt
from interleaving_reference import credit, hash_draws, interleave
from scipy.stats import binomtest, norm

SEED = 42
# (wins_a, wins_b, ties, first picks of A) per grid segment
GRID = [
    (0, 1, 0, 1), (1, 1, 2, 2), (3, 10, 1, 6), (0, 5, 0, 0), (10, 30, 3, 20), (25, 25, 0, 25),
    (40, 100, 5, 80), (480, 1000, 20, 700), (12, 13, 0, 3), (7, 0, 2, 9), (700, 1500, 0, 1000),
]  # fmt: skip


def _grid_rows(rows: list, outcomes: list) -> None:
    for g, (wins_a, wins_b, ties, first_a) in enumerate(GRID):
        winners = ["A"] * wins_a + ["B"] * wins_b + ["tie"] * ties
        for q, winner in enumerate(winners):
            request_id = f"g{g}-{q}"
            first, second = ("A", "B") if q < first_a else ("B", "A")
            items = [
                {"item_id": "x", "rank": 1, "team": first},
                {"item_id": "y", "rank": 2, "team": second},
            ]
            rows.append((request_id, f"gu{g}-{q}", items, {"world": f"grid{g:02d}"}))
            if winner != "tie":
                clicked = "x" if first == winner else "y"
                outcomes.append((request_id, f"gu{g}-{q}", clicked))


MULTI_WORLDS = ("m;x:1", "m;x")  # one user in both; separator characters in the segment keys


def _multi_segment_rows(rows: list, outcomes: list) -> None:
    """300 users with one impression in each of two segments (the same user counts in both)."""
    rng = random.Random(11)
    for u in range(300):
        for world in MULTI_WORLDS:
            request_id = f"{world}-{u}"
            first, second = ("A", "B") if rng.random() < 0.5 else ("B", "A")
            items = [
                {"item_id": "x", "rank": 1, "team": first},
                {"item_id": "y", "rank": 2, "team": second},
            ]
            rows.append((request_id, f"multi-user{u}", items, {"world": world}))
            clicked = rng.choice(["x", "y", "x", None])
            if clicked:
                outcomes.append((request_id, f"multi-user{u}", clicked))


def _world(name: str, users: int, a_noise: float, b_noise: float, rng: np.random.Generator):
    """Team-draft interleaved lists and position-based clicks; returns the Python tally."""
    rows, outcomes, tally = [], [], {"A": 0, "B": 0, "tie": 0}
    n_items, k = 30, 10
    for u in range(users):
        relevance = rng.uniform(0.0, 0.6, n_items)
        items = [f"it{i}" for i in range(n_items)]
        a = [items[i] for i in np.argsort(-(relevance + rng.normal(0, a_noise, n_items)))[:k]]
        b = [items[i] for i in np.argsort(-(relevance + rng.normal(0, b_noise, n_items)))[:k]]
        request_id = f"{name}-{u}"
        shown = interleave("team_draft", a, b, k, hash_draws(SEED, request_id))
        clicks = []
        for rank, (item, _) in enumerate(shown, start=1):
            if rng.uniform() < relevance[int(item[2:])] * 0.85 ** (rank - 1):
                clicks.append(item)
        logged = [{"item_id": i, "rank": r, "team": t} for r, (i, t) in enumerate(shown, start=1)]
        rows.append((request_id, f"{name}-user{u}", logged, {"world": name}))
        outcomes += [(request_id, f"{name}-user{u}", item) for item in clicks]
        ca, cb = credit(shown, clicks)
        tally["A" if ca > cb else "B" if cb > ca else "tie"] += 1
    return rows, outcomes, tally


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("interleaving_stats")
    rows: list = []
    outcomes: list = []
    _grid_rows(rows, outcomes)
    rng = np.random.default_rng(2025)
    tallies = {}
    for name, a_noise, b_noise in (("pref", 0.05, 10.0), ("null", 0.2, 0.2)):
        world_rows, world_outcomes, tallies[name] = _world(name, 1500, a_noise, b_noise, rng)
        rows += world_rows
        outcomes += world_outcomes
    _multi_segment_rows(rows, outcomes)
    order = list(range(len(rows)))
    random.Random(7).shuffle(order)  # file order must not matter
    database = tmp / "stats.duckdb"
    con = duckdb.connect(str(database))
    try:
        con.execute(RAW_DDL)
        con.executemany(
            "insert into raw.interleaved_exposures values ('t', 1, 'x.jsonl', ?, ?, ?, "
            "timestamp '2025-01-01 00:00:00', ?, 'team_draft', ?)",
            [(line, *rows[i][:3], rows[i][3]) for line, i in enumerate(order, start=1)],
        )
        con.executemany(
            "insert into raw.outcomes values ('t', 2, 'o.jsonl', ?, ?, ?, ?, 'Click', 1, "
            "timestamp '2025-01-01 00:00:01')",
            [(line, *o) for line, o in enumerate(outcomes, start=1)],
        )
    finally:
        con.close()
    dbt_vars = {
        "recsys_eval__source": "raw",
        "recsys_eval__using_rankers": True,  # off on raw tables unless set
        "recsys_eval__interleaving_source": "logged",
        "recsys_eval__interleaving_slice_keys": ["world"],
        "recsys_eval__interleaving_seed": SEED,
    }
    result, _ = run_dbt(tmp, "stats", "build", dbt_vars, database, ["+fct_interleaving_results"])
    assert result.returncode == 0, result.stdout[-4000:]
    con = duckdb.connect(str(database), read_only=True)
    try:
        cur = con.execute("select * from recsys_eval_marts.fct_interleaving_results")
        cols = [d[0] for d in cur.description]
        by_key = {r[1]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}
        engaged = (
            "select user_id, preference_score from "
            "recsys_eval_staging.int_recsys_eval__interleaving_user_preferences where is_engaged and "
        )
        scores = dict(
            con.execute(engaged + "scope = 'segment' and segment_key = 'world=pref'").fetchall()
        )
        global_scores = dict(con.execute(engaged + "scope = 'global'").fetchall())
        multi_scores = {
            world: dict(
                con.execute(
                    engaged + "scope = 'segment' and segment_key = ?", [f"world={world}"]
                ).fetchall()
            )
            for world in MULTI_WORLDS
        }
    finally:
        con.close()
    global_row = next(row for row in by_key.values() if row["scope"] == "global")
    return {
        "rows": by_key,
        "tallies": tallies,
        "pref_scores": scores,
        "global_scores": global_scores,
        "global_row": global_row,
        "multi_scores": multi_scores,
    }


@pytest.mark.parametrize("g", range(len(GRID)))
def test_sign_tests_match_scipy(results: dict, g: int) -> None:
    wins_a, wins_b, ties, first_a = GRID[g]
    row = results["rows"][f"world=grid{g:02d}"]
    assert (row["wins_a"], row["wins_b"], row["ties"]) == (wins_a, wins_b, ties)
    n = wins_a + wins_b
    exact = binomtest(wins_a, n, 0.5).pvalue if n else 1.0
    assert row["p_value_exact"] == pytest.approx(exact, rel=1e-9, abs=1e-300)
    normal = 2 * norm.sf(abs((wins_a - n / 2) / math.sqrt(n / 4))) if n else 1.0
    assert row["p_value"] == pytest.approx(normal, rel=1e-12, abs=1e-300)
    requests = wins_a + wins_b + ties
    first = binomtest(first_a, requests, 0.5).pvalue
    assert row["first_pick_p_value_exact"] == pytest.approx(first, rel=1e-9, abs=1e-300)
    # one user per impression: the user-level test is the impression-level test
    assert row["preference_p_value_exact"] == pytest.approx(exact, rel=1e-9, abs=1e-300)


def test_simulated_user_preference_is_recovered(results: dict) -> None:
    pref, tally = results["rows"]["world=pref"], results["tallies"]["pref"]
    assert (pref["wins_a"], pref["wins_b"], pref["ties"]) == (tally["A"], tally["B"], tally["tie"])
    assert pref["win_rate_a"] > 0.6
    assert pref["p_value_exact"] < 1e-6
    assert pref["preference_ci_lower"] > 0.5
    assert abs(pref["team_a_item_share"] - 0.5) < 0.02  # team draft keeps the teams balanced
    assert pref["first_pick_p_value_exact"] > 0.001  # the hash coin is fair

    null, tally = results["rows"]["world=null"], results["tallies"]["null"]
    assert (null["wins_a"], null["wins_b"], null["ties"]) == (tally["A"], tally["B"], tally["tie"])
    assert null["p_value_exact"] > 0.01
    assert null["preference_ci_lower"] < 0.5 < null["preference_ci_upper"]


def test_preference_interval_matches_the_python_bootstrap(results: dict) -> None:
    row = results["rows"]["world=pref"]
    lower, upper, used = interval(results["pref_scores"], iterations=200, seed=SEED, level=0.95)
    assert row["preference_ci_replicates"] == used
    assert row["preference_ci_lower"] == pytest.approx(lower, abs=1e-12)
    assert row["preference_ci_upper"] == pytest.approx(upper, abs=1e-12)
    share = sum(results["pref_scores"].values()) / len(results["pref_scores"])
    assert row["preference_share_a"] == pytest.approx(share, abs=1e-12)


@pytest.mark.parametrize("world", MULTI_WORLDS)
def test_interval_of_users_in_two_segments_matches_the_python_bootstrap(
    results: dict, world: str
) -> None:
    """The same users in two segments whose keys hold the separators: each segment's interval is
    the Python bootstrap of its own engaged users (weights shared, scopes kept apart)."""
    row = results["rows"][f"world={world}"]
    scores = results["multi_scores"][world]
    assert len(scores) > 100
    lower, upper, used = interval(scores, iterations=200, seed=SEED, level=0.95)
    assert row["users_engaged"] == len(scores)
    assert row["preference_ci_replicates"] == used
    assert row["preference_ci_lower"] == pytest.approx(lower, abs=1e-12)
    assert row["preference_ci_upper"] == pytest.approx(upper, abs=1e-12)


def test_global_preference_interval_matches_the_python_bootstrap(results: dict) -> None:
    """Every engaged user of every world in one scope: a user's weights are drawn once and shared by
    the scopes the user is in (global and the user's segment)."""
    row = results["global_row"]
    scores = results["global_scores"]
    lower, upper, used = interval(scores, iterations=200, seed=SEED, level=0.95)
    assert row["users_engaged"] == len(scores)
    assert row["preference_ci_replicates"] == used
    assert row["preference_ci_lower"] == pytest.approx(lower, abs=1e-12)
    assert row["preference_ci_upper"] == pytest.approx(upper, abs=1e-12)
