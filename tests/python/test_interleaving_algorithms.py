"""The interleaving simulation (int_recsys_eval__interleaving_simulated_items) against the Python
reference written from §7.2 (tests/python/interleaving_reference.py).

- The reference implementation reproduces the Go check vectors of §11.6 (f) when fed the Go
  draws, and hangs exactly where §7.2 says the reference hangs (our fix terminates).
- §11.6 (f)'s vectors are specific to Go's math/rand: our coin is md5('<seed>|<request_id>|<k>')
  on purpose, so instead the SQL walk must equal the Python reference with that coin on random
  lists (overlaps, duplicates, empty and uneven lists, max_results 0 and > 0), for all three
  algorithms, and must not depend on the order of the input rows.
"""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pytest
from dbt_helpers import RAW_DDL, run_dbt
from interleaving_reference import Hang, coin_uniform, hash_draws, interleave, sequence_draws

GO_SEED_42 = [1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0]
LISTS_A = ["a", "b", "c"]
LISTS_B = [["d", "e", "f"], ["d", "e", "f"], ["b", "a", "f"], ["c", "x", "y"]]
SELECT = ["+int_recsys_eval__interleaving_simulated_items"]


def _render(shown: list[tuple[str, str]]) -> tuple[str, str]:
    return " ".join(i for i, _ in shown), "".join(t for _, t in shown)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("team_draft", [("d a e", "BAB"), ("d a e", "BAB"), ("a b c", "ABA"), ("a c b", "ABA")]),
        ("balanced", [("d a e", "BAB"), ("a d b", "ABA"), ("b a f", "BAB"), ("c a b", "BAA")]),
        ("optimized", [("d a e", "BAB"), ("a d b", "ABA"), ("b a f", "BAB"), ("c a b", "BAA")]),
    ],
)
def test_reference_implementation_reproduces_go_vectors(algorithm: str, expected: list) -> None:
    draws = sequence_draws(GO_SEED_42)  # one generator shared by the four requests, in order
    got = [_render(interleave(algorithm, LISTS_A, b, 0, draws, terminate=False)) for b in LISTS_B]
    assert got == expected


@pytest.mark.parametrize(
    ("algorithm", "list_a", "list_b", "max_results", "fixed"),
    [
        ("balanced", ["a"], ["a", "b", "c", "d"], 0, 4),
        ("optimized", ["a", "b"], ["b", "a"], 5, 2),
    ],
)
def test_reference_hangs_and_the_fix_terminates(
    algorithm: str, list_a: list, list_b: list, max_results: int, fixed: int
) -> None:
    with pytest.raises(Hang):
        interleave(algorithm, list_a, list_b, max_results, sequence_draws(GO_SEED_42 * 500),
                   terminate=False)  # fmt: skip
    shown = interleave(algorithm, list_a, list_b, max_results, hash_draws(42, "r"))
    assert len(shown) == fixed
    assert len({i for i, _ in shown}) == fixed


def _random_cases(rng: random.Random, n: int) -> list[tuple[str, list[str], list[str]]]:
    cases = []
    for q in range(n):
        pool = [f"i{j}" for j in range(rng.randint(1, 12))]
        a = [rng.choice(pool) for _ in range(rng.randint(0, 8))]
        b = [rng.choice(pool) for _ in range(rng.randint(0, 8))]
        if q % 7 == 0:
            b = list(a)  # the rankers agree
        cases.append((f"req-{q:04d}", a, b))
    return cases


def _database(path: Path, cases: list, order: list[int]) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(RAW_DDL)
        for line_no, index in enumerate(order, start=1):
            request_id, a, b = cases[index]
            for table, items in (("ranker_a", a), ("ranker_b", b)):
                con.execute(
                    f"insert into raw.{table} values ('t', 1, 'f.jsonl', ?, ?, 'u', "
                    "timestamp '2025-01-01 00:00:00', ?, map {'tenant': 't1'})",
                    [line_no, request_id, items],
                )
    finally:
        con.close()


def _simulated(database: Path) -> dict[str, list[tuple[str, str]]]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute(
            "select request_id, item_id, team from recsys_eval_staging.int_recsys_eval__interleaving_simulated_items "
            "order by request_id, slot"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[str, str]]] = {}
    for request_id, item, team in rows:
        out.setdefault(request_id, []).append((item, team))
    return out


@pytest.mark.parametrize(
    ("algorithm", "seed", "max_results"),
    [("team_draft", 42, 0), ("balanced", 7, 4), ("optimized", 1, 0)],
)
def test_sql_walk_equals_reference_and_ignores_row_order(
    tmp_path: Path, algorithm: str, seed: int, max_results: int
) -> None:
    rng = random.Random(f"{algorithm}-{seed}")
    cases = _random_cases(rng, 240)
    order = list(range(len(cases)))
    rng.shuffle(order)
    shuffled = tmp_path / "shuffled.duckdb"
    _database(shuffled, cases, order)
    dbt_vars = {
        "recsys_eval__source": "raw",
        "recsys_eval__using_rankers": True,  # off on raw tables unless set
        "recsys_eval__interleaving_algorithm": algorithm,
        "recsys_eval__interleaving_seed": seed,
        "recsys_eval__interleaving_max_results": max_results,
    }
    result, _ = run_dbt(tmp_path, "shuffled", "run", dbt_vars, shuffled, SELECT)
    assert result.returncode == 0, result.stdout[-3000:]
    got = _simulated(shuffled)

    expected = {
        request_id: interleave(algorithm, a, b, max_results, hash_draws(seed, request_id))
        for request_id, a, b in cases
    }
    # requests whose lists are both empty show nothing and have no rows
    assert got == {q: shown for q, shown in expected.items() if shown}

    in_order = tmp_path / "ordered.duckdb"
    _database(in_order, cases, list(range(len(cases))))
    result, _ = run_dbt(tmp_path, "ordered", "run", dbt_vars, in_order, SELECT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert _simulated(in_order) == got


def test_sql_coin_is_the_documented_md5_recipe(tmp_path: Path) -> None:
    """hash_uniform in SQL equals the Python recipe a serving system would replay."""
    con = duckdb.connect()
    keys = [(42, f"r{i}", k) for i in range(50) for k in (1, 2, 3)]
    for seed, request_id, step in keys:
        (u,) = con.execute(
            "select cast(cast(('0x' || substr(md5(?), 1, 13)) as bigint) as double) "
            "/ 4503599627370496.0",
            [f"{seed}|{request_id}|{step}"],
        ).fetchone()
        assert u == coin_uniform(seed, request_id, step)
    share_a = sum(coin_uniform(42, f"q{i}", 1) < 0.5 for i in range(4000)) / 4000
    assert abs(share_a - 0.5) < 0.03
