"""The README's first steps work as written (issue 22): where the commands are, the DuckDB query
that works without a duckdb program (run here against a database this test builds), where a plain
`dbt build` writes, and the table of defaults that differ from the reference."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml
from render_reports import REPO, cli

from recsys_eval.config import apply_defaults, load_run_config

README = (REPO / "README.md").read_text()
DEMO_DB = "out/demo/offline.duckdb"


def test_readme_says_where_the_commands_are():
    assert "source .venv/bin/activate" in README
    assert ".venv/bin/recsys-eval" in README and ".venv/bin/dbt" in README
    assert f"duckdb {DEMO_DB}" not in README  # no duckdb program is installed


def test_readme_names_the_database_of_a_plain_dbt_build():
    profiles = yaml.safe_load((REPO / "profiles.yml").read_text())
    path = profiles["recsys_eval"]["outputs"]["duckdb"]["path"]
    default = re.search(r"env_var\('RECSYS_EVAL_DUCKDB_PATH', '([^']+)'\)", path).group(1)
    assert f"writes the database\n`{default}`" in README
    assert "RECSYS_EVAL_DUCKDB_PATH" in README


def test_readme_duckdb_one_liner_runs_against_a_run_database(tmp_path):
    lines = [
        line
        for line in README.splitlines()
        if line.startswith('.venv/bin/python -c "import duckdb') and DEMO_DB in line
    ]
    assert lines, "the README shows the Python one-liner"
    database = tmp_path / "offline.duckdb"
    proc = cli("run", "--mode", "offline", "--dataset", str(REPO / "configs/dataset.tiny.yaml"),
               "--config", str(REPO / "configs/offline.demo.yaml"),
               "--output", str(tmp_path / "offline.json"), "--database", str(database))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "offline.json").read_text())
    for line in dict.fromkeys(lines):
        assert DEMO_DB in line
        command = line.replace(".venv/bin/python", sys.executable, 1).replace(
            DEMO_DB, str(database)
        )
        run = subprocess.run(
            ["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        for metric in report["offline"]["metrics"]:
            assert metric["name"] in run.stdout


def _defaults_table() -> dict[str, str]:
    start = README.index("**Defaults that differ from the reference")
    rows = {}
    for line in README[start:].splitlines()[3:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_readme_lists_the_defaults_that_differ_from_the_reference(tmp_path):
    table = _defaults_table()
    defaults = apply_defaults({})
    assert table["ope.reward_model"].startswith(f"`{defaults['ope']['reward_model']}`")
    assert defaults["ope"]["reward_model"] != "reference"
    assert (
        table["ope.bootstrap.enabled"].startswith("`true`")
        and defaults["ope"]["bootstrap"]["enabled"]
    )
    # the decision policy: not filled in by apply_defaults; a config without it runs the playbook
    config = tmp_path / "c.yaml"
    config.write_text("mode: experiment\nexperiment: {decision: {enabled: true}}\n")
    cfg = load_run_config(REPO / "configs/dataset.tiny.yaml", config, "experiment")
    policy = cfg.eval["experiment"].get("decision", {}).get("policy", "playbook")
    assert table["experiment.decision.policy"].startswith(f"`{policy}`") and policy == "playbook"
