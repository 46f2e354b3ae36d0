"""Build the offline metric marts on DuckDB and check them against the reference's numbers.

fct_offline_metrics (scope x segment_key x metric_position) and fct_offline_request_metrics
(request_id x metric_position) against the golden offline report (§11.2), the all-metrics table
on the tiny data (§11.6 a), the time split (§11.6 d), ecommerce-mini (§11.6 i, k) and signals
(§11.6 j). Every build goes to its own temporary DuckDB file and target path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pytest
from conftest import REFERENCE
from dbt_helpers import REPO_ROOT, run_dbt

from recsys_eval.loader import ensure_raw_schema, load_file

EXAMPLES = REPO_ROOT / "examples"
GOLDEN_DIR = REFERENCE / "golden"  # ../shared/reference beside the repository (conftest)

TOLERANCE = 1e-12  # the reference itself is not bit-stable (reference §2.2)
FAMILIES = [
    "precision",
    "recall",
    "map",
    "ndcg",
    "hitrate",
    "mrr",
    "coverage",
    "novelty",
    "diversity",
]
HOME = "surface=home|tenant=t1"
SEARCH = "surface=search|tenant=t1"
RAW_VARS = {
    "recsys_eval__source": "raw",
    "recsys_eval__using_assignments": False,
    "recsys_eval__using_rankers": False,
}


def dbt_build(tmp_path: Path, name: str, dbt_vars: dict, database: Path | None = None) -> Path:
    result, database = run_dbt(tmp_path, name, "build", dbt_vars, database)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return database


def load_raw(database: Path, folder: Path) -> None:
    with duckdb.connect(str(database)) as connection:
        ensure_raw_schema(connection)
        load_file(connection, "exposure.v1", folder / "exposures.jsonl", table="exposures")
        load_file(connection, "outcome.v1", folder / "outcomes.jsonl", table="outcomes")


def metric_specs(families: list[str], ks: list[int]) -> list[dict]:
    return [{"name": family, "k": k} for k in ks for family in families]


def read_metrics(database: Path) -> list[dict]:
    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(
            "select * from recsys_eval_marts.fct_offline_metrics order by scope, segment_key, metric_position"
        )
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def values(rows: list[dict], segment: str | None = None) -> dict[str, float]:
    """metric_name -> value of the whole population (scope global, segment_key __all__) or of one
    segment (scope segment), the first row of a repeated spec."""
    scope, key = ("global", "__all__") if segment is None else ("segment", segment)
    out: dict[str, float] = {}
    for row in rows:
        if row["scope"] == scope and row["segment_key"] == key:
            out.setdefault(row["metric_name"], row["metric_value"])
    return out


def assert_close(
    actual: dict[str, float], expected: dict[str, float], tolerance: float = TOLERANCE
):
    for name, value in expected.items():
        assert name in actual, name
        assert math.isclose(actual[name], value, rel_tol=0, abs_tol=tolerance), (
            name,
            actual[name],
            value,
        )


# -- tiny dataset ------------------------------------------------------------------------------------

TINY_METRICS = [*metric_specs(FAMILIES, [1, 2, 3, 10]), {"name": "PRECISION@k", "k": 2}]


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory) -> Path:
    return dbt_build(
        tmp_path_factory.mktemp("offline_tiny"),
        "tiny",
        {
            "recsys_eval__slice_keys": ["tenant", "surface"],
            "recsys_eval__offline_metrics": TINY_METRICS,
        },
    )


def test_golden_offline_metrics_and_segments(tiny_build):
    golden = json.loads((GOLDEN_DIR / "offline.json").read_text())["offline"]
    rows = read_metrics(tiny_build)
    assert_close(values(rows), {metric["name"]: metric["value"] for metric in golden["metrics"]})
    assert {row["segment_key"] for row in rows if row["scope"] == "segment"} == set(
        golden["by_segment"]
    )
    for segment, metrics in golden["by_segment"].items():
        assert_close(values(rows, segment), {metric["name"]: metric["value"] for metric in metrics})
    assert_close(values(rows), {"precision@2": 0.16666666666666666, "recall@2": 0.3333333333333333})
    assert_close(values(rows, HOME), {"precision@2": 0.25, "recall@2": 0.5})
    assert_close(values(rows, SEARCH), {"precision@2": 0.0, "recall@2": 0.0})


REFERENCE_TABLE = {  # reference §11.6 (a): k -> family -> value
    1: [1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 0.5, 2.084962500721156, 1.0],
    2: [
        0.16666666666666666,
        1 / 3,
        1 / 3,
        1 / 3,
        1 / 3,
        0.75,
        1.834962500721156,
        0.9463946303571861,
    ],
    3: [
        0.2222222222222222,
        0.6666666666666666,
        0.4444444444444444,
        0.5,
        0.6666666666666666,
        1.0,
        1.9182958340544893,
        0.9591479170272447,
    ],
}
REFERENCE_FAMILIES = [
    "precision",
    "recall",
    "map",
    "ndcg",
    "hitrate",
    "coverage",
    "novelty",
    "diversity",
]


@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_reference_table_all_metrics(tiny_build, k):
    expected = dict(
        zip(
            [f"{family}@{k}" for family in REFERENCE_FAMILIES],
            REFERENCE_TABLE[min(k, 3)],
            strict=True,
        )
    )
    rows = read_metrics(tiny_build)
    assert_close(values(rows), expected)
    # the search segment (r3, empty list, no outcomes) is 0 everywhere
    assert_close(values(rows, SEARCH), {name: 0.0 for name in expected})


def test_reference_home_segment_at_3(tiny_build):
    rows = read_metrics(tiny_build)
    home = values(rows, HOME)
    assert_close(
        home,
        {"precision@3": 1 / 3, "recall@3": 1.0, "map@3": 2 / 3, "ndcg@3": 0.75, "hitrate@3": 1.0},
    )
    # coverage, novelty and diversity equal the global values (r3 has an empty list)
    glob = values(rows)
    assert_close(home, {name: glob[name] for name in ("coverage@3", "novelty@3", "diversity@3")})


def test_mrr_by_hand(tiny_build):
    with duckdb.connect(str(tiny_build), read_only=True) as connection:
        per_case = dict(
            connection.execute(
                "select request_id || ' ' || metric_name, metric_value "
                "from recsys_eval_marts.fct_offline_request_metrics where metric_family = 'mrr'"
            ).fetchall()
        )
    expected = {}
    for k in (1, 2, 3, 10):
        expected[f"r1 mrr@{k}"] = 1.0  # i1 clicked at rank 1
        expected[f"r2 mrr@{k}"] = 1 / 3 if k >= 3 else 0.0  # i4 converted at rank 3
        expected[f"r3 mrr@{k}"] = 0.0  # empty list
    assert_close(per_case, expected)
    assert_close(
        values(read_metrics(tiny_build)),
        {"mrr@1": 1 / 3, "mrr@2": 1 / 3, "mrr@3": 4 / 9, "mrr@10": 4 / 9},
    )


def test_config_order_cases_and_repeated_specs(tiny_build):
    rows = [row for row in read_metrics(tiny_build) if row["scope"] == "global"]
    assert [row["metric_position"] for row in rows] == list(range(1, len(TINY_METRICS) + 1))
    assert [row["metric_name"] for row in rows] == [
        f"{spec['name'].lower().removesuffix('@k')}@{spec['k']}" for spec in TINY_METRICS
    ]
    assert rows[-1]["metric_value"] == rows[len(FAMILIES)]["metric_value"]  # precision@2 twice
    assert {row["cases"] for row in rows} == {3}
    kinds = {row["metric_family"]: row["metric_kind"] for row in rows}
    assert {family for family, kind in kinds.items() if kind == "dataset"} == {
        "coverage",
        "novelty",
        "diversity",
    }


def test_time_split_precision(tmp_path):
    database = dbt_build(
        tmp_path,
        "window",
        {
            "recsys_eval__offline_metrics": [{"name": "precision", "k": 2}],
            "recsys_eval__test_window_start": "2025-01-01T00:00:00Z",
            "recsys_eval__test_window_end": "2025-01-01T00:01:00Z",
        },
    )
    rows = read_metrics(database)
    assert_close(values(rows), {"precision@2": 0.25})
    assert [row["cases"] for row in rows if row["scope"] == "global"] == [2]
    # no slice keys: a single __all__ segment repeats the global numbers
    assert_close(values(rows, "__all__"), {"precision@2": 0.25})


def test_unknown_metric_and_bad_k_are_compile_errors(tmp_path):
    result, _ = run_dbt(
        tmp_path, "unknown", "compile", {"recsys_eval__offline_metrics": [{"name": "auc", "k": 2}]}
    )
    assert result.returncode != 0
    assert "unknown metric: auc" in result.stdout + result.stderr
    result, _ = run_dbt(
        tmp_path, "bad_k", "compile", {"recsys_eval__offline_metrics": [{"name": "NDCG", "k": 0}]}
    )
    assert result.returncode != 0
    assert "ndcg@0 requires k > 0" in result.stdout + result.stderr


# -- raw datasets (loaded with the loader) ------------------------------------------------------------

RAW_METRICS = [
    {"name": name, "k": 3}
    for name in ["precision", "recall", "ndcg", "hitrate", "coverage", "novelty", "diversity"]
]


def test_ecommerce_mini(tmp_path):
    database = tmp_path / "ecommerce.duckdb"
    load_raw(database, EXAMPLES / "ecommerce-mini")
    dbt_build(
        tmp_path,
        "ecommerce",
        {
            **RAW_VARS,
            "recsys_eval__slice_keys": ["tenant", "surface", "category"],
            "recsys_eval__offline_metrics": [*RAW_METRICS, {"name": "precision", "k": 1}],
        },
        database,
    )
    rows = read_metrics(database)
    assert_close(
        values(rows),
        {
            "precision@3": 0.3888888888888889,
            "recall@3": 1.0,
            "ndcg@3": 0.9384882922619097,
            "hitrate@3": 1.0,
            "coverage@3": 1.0,
            "novelty@3": 2.9329993066372904,
            "diversity@3": 0.9776664355457633,
            "precision@1": 0.8333333333333334,  # §11.6 (k) point estimate
        },
    )
    assert_close(
        values(rows, "category=outerwear|surface=home|tenant=demo"), {"ndcg@3": 1 / math.log2(3)}
    )
    assert_close(values(rows, "category=footwear|surface=home|tenant=demo"), {"precision@3": 0.5})
    assert next(row["cases"] for row in rows if row["scope"] == "global") == 6


def test_signals(tmp_path):
    database = tmp_path / "signals.duckdb"
    load_raw(database, EXAMPLES / "signals")
    dbt_build(
        tmp_path,
        "signals",
        {
            **RAW_VARS,
            "recsys_eval__slice_keys": ["tenant", "surface"],
            "recsys_eval__offline_metrics": RAW_METRICS,
        },
        database,
    )
    rows = read_metrics(database)
    assert_close(
        values(rows),
        {
            "precision@3": 0.3333333333333333,
            "recall@3": 1.0,
            "ndcg@3": 0.7103099178571525,
            "hitrate@3": 1.0,
            "coverage@3": 1.0,
            "novelty@3": 2.197159723424149,
            "diversity@3": 0.9462651872218009,
        },
    )
    assert_close(values(rows, "surface=home|tenant=demo"), {"ndcg@3": 0.815465}, tolerance=1e-6)
    assert_close(values(rows, "surface=pdp|tenant=demo"), {"ndcg@3": 0.5})
