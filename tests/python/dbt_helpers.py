"""Running the project's dbt models from tests: one helper for every test module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_BIN = Path(sys.executable).with_name("dbt")

# The raw tables as `recsys-eval load` writes them, for tests that insert generated rows directly.
RAW_DDL = """
create schema raw;
create table raw.exposures (
    load_id varchar, load_seq bigint, source_file varchar, line_no bigint,
    request_id varchar, user_id varchar, ts timestamp,
    items struct(item_id varchar, rank bigint, propensity double, logging_propensity double,
                 target_propensity double)[],
    context map(varchar, varchar), latency_ms double, error boolean
);
create table raw.outcomes (
    load_id varchar, load_seq bigint, source_file varchar, line_no bigint,
    request_id varchar, user_id varchar, item_id varchar, event_type varchar, value double,
    ts timestamp
);
create table raw.assignments (
    load_id varchar, load_seq bigint, source_file varchar, line_no bigint,
    experiment_id varchar, variant varchar, request_id varchar, user_id varchar, ts timestamp,
    context map(varchar, varchar)
);
create table raw.ranker_a (
    load_id varchar, load_seq bigint, source_file varchar, line_no bigint,
    request_id varchar, user_id varchar, ts timestamp, items varchar[], context map(varchar, varchar)
);
create table raw.ranker_b as select * from raw.ranker_a;
create table raw.interleaved_exposures (
    load_id varchar, load_seq bigint, source_file varchar, line_no bigint,
    request_id varchar, user_id varchar, ts timestamp,
    items struct(item_id varchar, rank bigint, team varchar)[], algorithm varchar,
    context map(varchar, varchar)
);
"""


def run_dbt(
    tmp_path: Path,
    name: str,
    command: str = "build",
    dbt_vars: dict | None = None,
    database: Path | None = None,
    select: list[str] | None = None,
    extra: list[str] | None = None,
) -> tuple[subprocess.CompletedProcess, Path]:
    """`dbt <command>` on the DuckDB target into tmp_path/<name>.duckdb (own target/log paths)."""
    database = database or tmp_path / f"{name}.duckdb"
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(REPO_ROOT),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "RECSYS_EVAL_DUCKDB_PATH": str(database),
    }
    args = [
        str(DBT_BIN),
        command,
        "--target",
        "duckdb",
        "--project-dir",
        str(REPO_ROOT),
        "--target-path",
        str(tmp_path / f"target_{name}"),
        "--log-path",
        str(tmp_path / f"logs_{name}"),
        "--no-partial-parse",
    ]
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    if select:
        args += ["--select", *select]
    args += extra or []
    result = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    return result, database
