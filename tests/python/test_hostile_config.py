"""Hostile configuration (issue 8, item 3): values from YAML, flags or dbt --vars never change the
SQL that runs.

Two defences, both tested here with values that try: the CLI rejects identifiers outside
`[A-Za-z0-9_.:-]{1,64}` (slice keys, experiment ids), unknown metric names, modes and options up
front; values that are data (variant names, a CUPED covariate key, SRM weights' variant names,
anything a dbt user passes with --vars) reach SQL only as string literals through
`recsys_eval.string_literal`, and the tests check that each value comes back from DuckDB and
Spark byte for byte, including `${env:...}`, which Spark would otherwise substitute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import CONFIGS, ROOT
from dbt_helpers import REPO_ROOT, run_dbt

from recsys_eval.cli import main
from recsys_eval.config import load_run_config
from recsys_eval.errors import EXIT_ERROR, ConfigError

DBT_BIN = Path(sys.executable).with_name("dbt")
SECRET_ENV = "RECSYS_EVAL_HOSTILE_TEST_SECRET"

HOSTILE = [
    "'); drop table raw.exposures; --",
    "a'b",
    "a''b",
    "back\\slash\\",
    "\\'; select 42; --",
    "new\nline",
    "tab\tand\rcr",
    "{{ 7 * 6 }}",
    "{% if true %}jinja{% endif %}",
    "${env:" + SECRET_ENV + "}",
    "${spark.app.name}",
    "$$dollar$$ $1",
    "é☃𝄞 中文 \u202e",
    "/* c */ -- d",
    "\\u0027\\x27",
    '"double" `tick`',
    "%s %(x)s ?",
    "",
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- rejected up front ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["a'b", "x; drop table t", "new\nline", "{{ 7 * 6 }}", "${env:HOME}", "k=v", "", "é", "a" * 65],
)
@pytest.mark.parametrize(
    "where", ["offline.slice_keys", "experiment.slice_keys", "experiment.srm.slice_keys"]
)
def test_hostile_slice_keys_are_rejected_naming_the_key(tmp_path: Path, key: str, where: str):
    parts = where.split(".")
    block: dict = {parts[-1]: [key]}
    for part in reversed(parts[:-1]):
        block = {part: block}
    cfg = {"mode": "offline", "offline": {"metrics": [{"name": "ndcg", "k": 5}]}, **block}
    eval_file = write(tmp_path, "eval.yaml", json.dumps(cfg))
    with pytest.raises(ConfigError) as info:
        load_run_config(CONFIGS / "dataset.tiny.yaml", eval_file)
    assert str(info.value).startswith(f"{eval_file}: {where}[0]: {key!r} is not a valid")


@pytest.mark.parametrize("value", ["x'); drop table raw.assignments; --", "${env:HOME}", "a b"])
def test_hostile_experiment_id_from_the_flag_is_rejected_before_any_work(
    tmp_path: Path, monkeypatch, capsys, value: str
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "r.json"
    code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(CONFIGS / "experiment.default.yaml"), "--output", str(out),
                 "--experiment-id", value])  # fmt: skip
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"experiment.experiment_id: {value!r} is not a valid identifier" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ('offline: {metrics: [{name: "ndcg\'); drop table x; --", k: 5}]}', "unknown metric"),
        ('offline: {metrics: [{name: ndcg, k: 5}], dialect: "trec\' or 1=1"}', "offline.dialect"),
        (
            "offline: {metrics: [{name: ndcg, k: 5}], relevance: {grade: event, gains: "
            '{"click\' --": 1}}}',
            "unknown event type",
        ),
        ('offline: {metrics: [{name: ndcg, k: 5}]}\nprivacy: {pii_guard: "on\'"}', "pii_guard"),
    ],
)
def test_hostile_metric_names_and_options_are_rejected(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    eval_file = write(tmp_path, "eval.yaml", "mode: offline\n" + yaml_text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_run_config(CONFIGS / "dataset.tiny.yaml", eval_file)


@pytest.mark.parametrize(
    "schema", ["../../etc/passwd", "/etc/passwd", "/dev/zero", "schemas/../../../etc/shadow"]
)
def test_schema_values_cannot_read_outside_schema_files(schema: str, tmp_path: Path, capsys):
    data = write(tmp_path, "x.jsonl", "{}\n")
    assert main(["validate", "--schema", schema, "--input", str(data)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "refusing schema path" in err or "schema file not found" in err
    assert "root:" not in err


# --- quoted: the values come back byte for byte -------------------------------------------------


def compile_inline(tmp_path: Path, target: str, sql: str, dbt_vars: dict) -> str:
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(REPO_ROOT),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "RECSYS_EVAL_DUCKDB_PATH": str(tmp_path / "inline.duckdb"),
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }
    command = [str(DBT_BIN), "--quiet", "--no-populate-cache", "compile", "--target", target,
               "--project-dir", str(REPO_ROOT), "--target-path", str(tmp_path / f"t_{target}"),
               "--log-path", str(tmp_path / "logs"), "--no-partial-parse",
               "--vars", json.dumps(dbt_vars, ensure_ascii=False), "--inline", sql]  # fmt: skip
    # Bytes, not text=True: universal newlines would turn a '\r' inside a literal into '\n'.
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True)
    stdout = result.stdout.decode("utf-8")
    assert result.returncode == 0, stdout[-3000:] + result.stderr.decode()[-2000:]
    return stdout[stdout.index("select") :]


INLINE = (
    "select "
    + ", ".join(
        f"{{{{ recsys_eval.string_literal(var('hostile')[{i}]) }}}} as v{i}"
        for i in range(len(HOSTILE))
    )
    + ", case when {{ recsys_eval.matches_experiment(\"'exp_1'\") }} then 1 else 0 end as matched"
)


def test_string_literals_round_trip_on_duckdb(tmp_path: Path, monkeypatch) -> None:
    sql = compile_inline(
        tmp_path, "duckdb", INLINE, {"hostile": HOSTILE, "recsys_eval__experiment_id": HOSTILE[0]}
    )
    row = duckdb.connect().execute(sql).fetchone()
    assert list(row[:-1]) == HOSTILE
    assert row[-1] == 0  # the hostile experiment id is a value: it matches nothing


@pytest.mark.spark
@pytest.mark.slow
def test_string_literals_round_trip_on_spark(tmp_path: Path, monkeypatch) -> None:
    """Spark reads backslash escapes and substitutes ${...} in the SQL text: both are handled."""
    monkeypatch.setenv(SECRET_ENV, "leaked-secret")
    monkeypatch.setenv("SPARK_LOCAL_IP", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
    sql = compile_inline(
        tmp_path, "spark", INLINE, {"hostile": HOSTILE, "recsys_eval__experiment_id": HOSTILE[0]}
    )
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("recsys_eval_hostile_config")
        .config("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    assert spark.conf.get("spark.sql.variable.substitute") == "true"
    row = spark.sql(sql).collect()[0]
    assert list(row)[:-1] == HOSTILE
    assert row[-1] == 0
    assert "leaked-secret" not in "".join(list(row)[:-1])


@pytest.mark.slow
def test_hostile_vars_through_the_experiment_models_on_duckdb(tmp_path: Path) -> None:
    """A real build on the seeds with hostile dbt --vars: the models build, every value is kept
    as data, and no table is dropped."""
    key, variant, covariate = "k'); drop table x; --", "B'); drop table y; --", "c${env:HOME}'"
    dbt_vars = {
        "recsys_eval__slice_keys": [key, "tenant"],
        "recsys_eval__experiment_slice_keys": [key],
        "recsys_eval__experiment_control_variant": variant,
        "recsys_eval__experiment_srm_expected": {"A": 1, variant: 1},
        "recsys_eval__experiment_cuped_covariate_key": covariate,
    }
    select = ["+int_recsys_eval__requests", "+fct_experiment_srm", "+fct_experiment_cuped"]
    result, db = run_dbt(
        tmp_path,
        "hostile",
        "build",
        dbt_vars,
        select=select,
        extra=["--indirect-selection", "cautious"],
    )
    assert result.returncode == 0, result.stdout[-4000:]
    con = duckdb.connect(str(db), read_only=True)
    segments = {
        r[0]
        for r in con.execute(
            "select segment_key from recsys_eval_staging.int_recsys_eval__requests"
        ).fetchall()
    }
    assert segments and all(s.startswith(f"{key}=|tenant=") for s in segments)
    srm_variants = {
        r[0]
        for r in con.execute(
            "select distinct variant from recsys_eval_marts.fct_experiment_srm"
        ).fetchall()
    }
    assert variant in srm_variants
    covariates = {
        r[0]
        for r in con.execute(
            "select covariate_key from recsys_eval_marts.fct_experiment_cuped"
        ).fetchall()
    }
    assert covariates == {covariate}
    tables = {
        r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()
    }
    assert "recsys_eval_tiny_exposures" in tables and "recsys_eval_tiny_assignments" in tables
