"""fct_experiment_significance reads in column order (issue 22, item 9): the keys, then the
columns that answer "did the variant beat the control", then the detail, in the mart, in its YAML
and in the README's query; and `is_primary` comes from the same config as the report's `primary`
(experiment.primary_metrics, passed by the CLI). A real run of the demo experiment
(`primary_metrics: ["ctr"]`, `slice_keys: [tenant]`) through the CLI."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest
import yaml
from render_reports import REPO, RUNS, shared_reports

ANSWER = [
    "test_position", "scope", "segment_key",
    "metric", "variant", "control_variant", "variant_rate", "control_rate",
    "absolute_lift", "absolute_lift_ci_lower", "absolute_lift_ci_upper",
    "relative_lift", "relative_lift_ci_lower", "relative_lift_ci_upper",
    "p_value", "adjusted_p_value", "is_significant", "is_primary",
]  # fmt: skip
README = (REPO / "README.md").read_text()
EXPERIMENT_DB = "out/demo/experiment.duckdb"


@pytest.fixture(scope="session")
def tiny_reports(tmp_path_factory):
    return shared_reports(tmp_path_factory)


@pytest.fixture(scope="module")
def significance(tiny_reports) -> tuple[list[str], list[dict]]:
    tiny_reports.path("experiment")
    with duckdb.connect(str(tiny_reports.database("experiment")), read_only=True) as con:
        cursor = con.execute(
            "select * from recsys_eval_marts.fct_experiment_significance order by test_position"
        )
        columns = [c[0] for c in cursor.description]
        return columns, [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def test_the_answer_comes_first_in_the_mart_and_its_yaml(significance):
    columns, _ = significance
    assert columns[: len(ANSWER)] == ANSWER
    documented = yaml.safe_load((REPO / "models/marts/_recsys_eval__experiment.yml").read_text())
    model = next(m for m in documented["models"] if m["name"] == "fct_experiment_significance")
    assert [c["name"] for c in model["columns"]] == columns  # the docs list the mart's order
    section = README[README.index("**Per metric and segment**") :]
    listed = section[: section.index("Everything after")]
    positions = [listed.index(f"`{name}`") for name in ANSWER if f"`{name}`" in listed]
    assert len(positions) >= len(ANSWER) - 4 and positions == sorted(positions)


def test_is_primary_is_exactly_the_configured_primary_metrics(tiny_reports, significance):
    _, rows = significance
    config = yaml.safe_load(RUNS["experiment"][1].read_text())
    primary = {m.lower() for m in config["experiment"]["primary_metrics"]}
    assert primary == {"ctr"}
    assert {row["metric"] for row in rows} == {"ctr", "conversion_rate"}
    assert [row["is_primary"] for row in rows] == [row["metric"] in primary for row in rows]
    # the mart agrees with the report, test by test
    tests = tiny_reports.load("experiment")["experiment"]["significance"]
    assert [t["primary"] for t in tests] == [row["is_primary"] for row in rows]


def test_the_readme_query_runs_on_a_run_database(tiny_reports, significance):
    _, rows = significance
    lines = [
        line for line in README.splitlines()
        if line.startswith('.venv/bin/python -c "import duckdb') and EXPERIMENT_DB in line
    ]  # fmt: skip
    assert len(lines) == 1
    command = (
        lines[0]
        .replace(".venv/bin/python", sys.executable, 1)
        .replace(EXPERIMENT_DB, str(tiny_reports.database("experiment")))
    )
    run = subprocess.run(
        ["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    for name in (
        "segment_key",
        "metric",
        "lift",
        "ci_lower",
        "p_adjusted",
        "is_significant",
        "is_primary",
    ):
        assert name in run.stdout
    assert "tenant=t1" in run.stdout and "__all__" in run.stdout
    assert str(round(rows[0]["adjusted_p_value"], 4)) in run.stdout  # every column is shown
