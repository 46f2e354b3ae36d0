"""recsys_eval as a dbt package (issue 17.4, issue 22.10).

examples/host_project is a shop's own dbt project: its tables hold one row per shown item, integer
ids, epoch-millisecond times and tap / purchase events (setup_tables.py). It installs the package
with `packages.yml` (`local: ../..`) and maps its columns with vars. Its marts must equal what
`recsys-eval run` computes from the same rows written as JSONL. One dbt build (only the marts the
comparison reads, and the host's own model), one CLI run.

The README's `packages.yml` lines are read from the README and installed as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "examples" / "host_project"
DBT = REPO / ".venv" / "bin" / "dbt"
CLI = REPO / ".venv" / "bin" / "recsys-eval"
MARTS = ("fct_offline_metrics", "fct_data_quality", "fct_data_quality_checks")
METRICS = [
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


def _dbt_env(database: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DBT_PROFILES_DIR": str(HOST),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "HOST_SHOP_DUCKDB_PATH": str(database),
        }
    )
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{args} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


def _schema_of(con: duckdb.DuckDBPyConnection, table: str) -> str:
    rows = con.execute(
        "select table_schema from information_schema.tables where table_name = ?", [table]
    ).fetchall()
    assert len(rows) == 1, f"{table}: {rows}"
    return rows[0][0]


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f'select * from "{_schema_of(con, table)}".{table} order by all').fetchall()


@pytest.fixture(scope="module")
def host_build(tmp_path_factory):
    """The host project built on its own tables, and the CLI's run on the same rows as JSONL."""
    work = tmp_path_factory.mktemp("host_project")
    database = work / "host_shop.duckdb"
    jsonl = work / "jsonl"
    _run([sys.executable, "setup_tables.py", str(database), "--jsonl", str(jsonl)], HOST)
    env = _dbt_env(database)
    _run([str(DBT), "deps"], HOST, env)
    select = [f"+{mart}" for mart in MARTS] + ["shop_requests_per_surface"]
    build_log = _run(
        [
            str(DBT),
            "build",
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(work / "logs"),
            "--select",
            *select,
            "--exclude",
            "tag:recsys_eval_invariants",
        ],
        HOST,
        env,
    )

    (work / "dataset.yaml").write_text(
        yaml.safe_dump(
            {
                "exposures": {"type": "jsonl", "path": str(jsonl / "exposures.jsonl")},
                "outcomes": {"type": "jsonl", "path": str(jsonl / "outcomes.jsonl")},
            }
        )
    )
    (work / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "mode": "offline",
                "offline": {
                    "metrics": [{"name": m, "k": 10} for m in METRICS],
                    "slice_keys": ["surface"],
                },
            }
        )
    )
    report = work / "report.json"
    cli_database = work / "cli.duckdb"
    _run(
        [
            str(CLI),
            "run",
            "--mode",
            "offline",
            "--dataset",
            str(work / "dataset.yaml"),
            "--config",
            str(work / "config.yaml"),
            "--output",
            str(report),
            "--database",
            str(cli_database),
            "--quiet",
        ],
        REPO,
    )
    return {
        "database": database,
        "cli_database": cli_database,
        "build_log": build_log,
        "report": json.loads(report.read_text()),
    }


def test_host_marts_equal_the_cli_marts(host_build):
    host = duckdb.connect(str(host_build["database"]), read_only=True)
    cli = duckdb.connect(str(host_build["cli_database"]), read_only=True)
    try:
        for mart in MARTS:
            host_rows, cli_rows = _rows(host, mart), _rows(cli, mart)
            assert host_rows, mart
            assert host_rows == cli_rows, mart
    finally:
        host.close()
        cli.close()


def test_host_marts_equal_the_cli_report(host_build):
    report = host_build["report"]
    with duckdb.connect(str(host_build["database"]), read_only=True) as host:
        marts = _schema_of(host, "fct_offline_metrics")
        rows = host.execute(
            f'select scope, segment_key, metric_name, metric_value from "{marts}".fct_offline_metrics '
            "where metric_kind = 'dataset' or scope = 'global' or scope = 'segment' order by metric_position"
        ).fetchall()
    global_metrics = {name: value for scope, _, name, value in rows if scope == "global"}
    assert {m["name"]: m["value"] for m in report["offline"]["metrics"]} == pytest.approx(
        global_metrics
    )
    for segment, metrics in report["offline"]["by_segment"].items():
        host_segment = {
            name: value for scope, key, name, value in rows if scope == "segment" and key == segment
        }
        assert {m["name"]: m["value"] for m in metrics} == pytest.approx(host_segment), segment
    assert set(report["offline"]["by_segment"]) == {"surface=cart", "surface=home", "surface=pdp"}
    # the tap and purchase events count as clicks and conversions (outcome_event_types)
    checks = {c["check_name"]: c for c in report["data_quality"]["checks"]}
    assert checks["duplicate_exposure_request_ids"]["total_rows"] == 150


def test_host_project_keeps_its_own_schema_and_leaves_out_the_invariants(host_build):
    with duckdb.connect(str(host_build["database"]), read_only=True) as host:
        assert _schema_of(host, "shop_requests_per_surface") == "main"
        # the package's models in their own schemas, through the host's (dbt's default) macro
        assert _schema_of(host, "fct_offline_metrics") == "main_recsys_eval_marts"
        assert _schema_of(host, "stg_recsys_eval__exposures") == "main_recsys_eval_staging"
        # off unless configured: no assignment, ranker or interleaving model, no bundled seed
        tables = {
            name
            for (name,) in host.execute(
                "select table_name from information_schema.tables"
            ).fetchall()
        }
        assert not {t for t in tables if "assignments" in t or "interleav" in t or "ranker" in t}
        assert not {t for t in tables if t.startswith("recsys_eval_tiny")}
        comment = host.execute(
            "select comment from duckdb_columns() where table_name = 'fct_offline_metrics' "
            "and column_name = 'metric_value'"
        ).fetchone()[0]
        assert comment, "persist_docs: the column comment reaches DuckDB"
    assert "unit_test" not in host_build["build_log"]


def test_missing_column_fails_at_compile_time_with_its_name(host_build, tmp_path):
    env = _dbt_env(host_build["database"])
    result = subprocess.run(
        [
            str(DBT),
            "compile",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path),
            "--select",
            "stg_recsys_eval__outcomes",
            "--vars",
            json.dumps(
                {
                    "recsys_eval__outcomes_columns": {
                        "request_id": "req_id",
                        "item_id": "sku",
                        "event_type": "event_name",
                    }
                }
            ),
        ],
        cwd=HOST,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert "event_name" in result.stdout and "recsys_eval__outcomes_columns" in result.stdout


def _readme_packages_blocks() -> list[dict]:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```yaml\n# packages.yml\n(.*?)```", readme, re.S)
    assert blocks, "README: a ```yaml block starting with `# packages.yml`"
    return [yaml.safe_load(block) for block in blocks]


def test_readme_packages_yml_installs_as_written(tmp_path):
    entries = [entry for block in _readme_packages_blocks() for entry in block["packages"]]
    local = [e for e in entries if "local" in e]
    git = [e for e in entries if "git" in e]
    assert local and git
    # the git form: its revision is a branch or commit of this repository
    for entry in git:
        subprocess.run(
            ["git", "rev-parse", "--verify", f"{entry['revision']}^{{commit}}"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    # the local form, as written, from a project beside a checkout named as in the README
    project = tmp_path / "my_project"
    project.mkdir()
    checkout = (project / local[0]["local"]).resolve()
    checkout.parent.mkdir(parents=True, exist_ok=True)
    checkout.symlink_to(REPO, target_is_directory=True)
    (project / "dbt_project.yml").write_text(
        "name: my_project\nversion: '1.0'\nconfig-version: 2\nprofile: host_shop\n"
    )
    (project / "packages.yml").write_text(yaml.safe_dump({"packages": local}))
    env = _dbt_env(tmp_path / "unused.duckdb")
    _run([str(DBT), "deps"], project, env)
    installed = project / "dbt_packages" / "recsys_eval" / "dbt_project.yml"
    assert yaml.safe_load(installed.read_text())["name"] == "recsys_eval"
    shutil.rmtree(project / "dbt_packages")
