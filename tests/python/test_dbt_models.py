"""Build the dbt project on DuckDB and check the data quality marts against the reference numbers.

Every build goes to its own temporary DuckDB file (RECSYS_EVAL_DUCKDB_PATH) and target path, so the
tests neither touch target/ nor collide with other builds running in the checkout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pytest
from conftest import REFERENCE
from dbt_helpers import RAW_DDL, run_dbt

GOLDEN_DIR = REFERENCE / "golden"  # ../shared/reference beside the repository (conftest)

TOLERANCE = 1e-12  # the reference itself is not bit-stable (reference §2.2)


def dbt_build(
    tmp_path: Path, name: str, dbt_vars: dict | None = None, database: Path | None = None
):
    """Run `dbt build` into tmp_path/<name>.duckdb and return the database path."""
    result, database = run_dbt(tmp_path, name, "build", dbt_vars, database)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return database


def read_rows(database: Path, query: str) -> list[dict]:
    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(query)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def global_row(database: Path) -> dict:
    rows = read_rows(
        database, "select * from recsys_eval_marts.fct_data_quality where scope = 'global'"
    )
    assert len(rows) == 1
    return rows[0]


def assert_matches(actual: dict, expected: dict) -> None:
    for field, value in expected.items():
        if isinstance(value, float) or isinstance(actual[field], float):
            assert math.isclose(actual[field], value, rel_tol=0, abs_tol=TOLERANCE), field
        else:
            assert actual[field] == value, field


def golden_expectation(data_quality: dict) -> dict:
    """Flatten a golden report's data_quality section to the mart's column names."""
    expected = {}
    for section, prefix in [
        ("exposure_completeness", "exposure"),
        ("outcome_completeness", "outcome"),
        ("assignment_completeness", "assignment"),
    ]:
        if section in data_quality:
            for key, value in data_quality[section].items():
                expected[f"{prefix}_{key}"] = value
    expected.update(data_quality["join_integrity"])
    expected.setdefault("duplicate_exposure_request_ids", 0)  # omitted from the JSON when 0
    return expected


@pytest.fixture(scope="module")
def default_build(tmp_path_factory) -> Path:
    return dbt_build(tmp_path_factory.mktemp("dbt_default"), "default")


def test_data_quality_matches_golden_reports(default_build):
    row = global_row(default_build)
    offline = json.loads((GOLDEN_DIR / "offline.json").read_text())["data_quality"]
    experiment = json.loads((GOLDEN_DIR / "experiment.json").read_text())["data_quality"]
    # Offline: everything but the assignment fields (the reference's offline mode reads no assignments).
    offline_expected = {
        key: value for key, value in golden_expectation(offline).items() if "assignment" not in key
    }
    assert_matches(row, offline_expected)
    # Without an experiment filter the tiny assignments (all exp_123) equal the experiment golden.
    assert_matches(row, golden_expectation(experiment))


def test_data_quality_breakdown_adds_up(default_build):
    rows = read_rows(
        default_build,
        "select * from recsys_eval_marts.fct_data_quality where scope = 'tenant_surface' order by tenant, surface",
    )
    assert [(row["tenant"], row["surface"]) for row in rows] == [("t1", "home"), ("t1", "search")]
    home, search = rows
    assert_matches(
        home,
        {
            "exposure_total": 2,
            "exposure_missing": 0,
            "exposures_joined": 2,
            "outcome_total": 2,
            "outcomes_joined": 2,
            "exposure_join_rate": 1.0,
        },
    )
    assert_matches(
        search,
        {
            "exposure_total": 1,
            "exposure_missing": 1,
            "exposure_missing_rate": 1.0,
            "outcome_total": 0,
            "exposure_join_rate": 0.0,
        },
    )


def test_data_quality_checks_are_clean_on_tiny(default_build):
    rows = read_rows(default_build, "select * from recsys_eval_marts.fct_data_quality_checks")
    assert {row["check_name"] for row in rows} == {
        "orphan_outcomes",
        "duplicate_outcome_rows",
        "outcome_item_not_shown",
        "outcome_before_exposure",
        "duplicate_items_in_list",
        "rank_gaps",
        "duplicate_exposure_request_ids",
        "propensity_out_of_range",
    }
    assert all(row["failing_rows"] == 0 for row in rows)


def test_time_split_reproduces_reference_run(tmp_path):
    """Reference §11.6(d): test window 00:00:00-00:01:00, offline mode (no assignments)."""
    database = dbt_build(
        tmp_path,
        "time_split",
        {
            "recsys_eval__test_window_start": "2025-01-01T00:00:00Z",
            "recsys_eval__test_window_end": "2025-01-01T00:01:00Z",
            "recsys_eval__using_assignments": False,
        },
    )
    assert_matches(
        global_row(database),
        {
            "exposure_total": 2,
            "exposure_missing": 0,
            "exposure_missing_rate": 0.0,
            "outcome_total": 1,
            "outcome_missing": 0,
            "outcome_missing_rate": 0.0,
            "exposure_count": 2,
            "outcome_count": 1,
            "exposure_join_rate": 0.5,
            "outcome_join_rate": 1.0,
            "assignment_total": 0,
            "assignments_count": 0,
            "assignment_join_rate": 0.0,
        },
    )


def test_experiment_filter_is_case_insensitive(tmp_path):
    database = dbt_build(tmp_path, "experiment", {"recsys_eval__experiment_id": "EXP_123"})
    assert_matches(
        global_row(database),
        {
            "assignment_total": 3,
            "assignment_missing": 0,
            "assignment_missing_rate": 0.0,
            "assignments_count": 3,
            "assignment_join_rate": 1.0,
        },
    )


def test_raw_mode_builds_on_empty_raw_tables(tmp_path):
    database = tmp_path / "raw_empty.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute(RAW_DDL)
    dbt_build(tmp_path, "raw_empty", {"recsys_eval__source": "raw"}, database=database)
    row = global_row(database)
    assert row["exposure_total"] == 0
    assert row["outcome_total"] == 0
    assert row["assignment_total"] == 0
    assert row["exposure_join_rate"] == 0.0
    assert (
        read_rows(database, "select count(*) as n from recsys_eval_marts.fct_data_quality")[0]["n"]
        == 1
    )
