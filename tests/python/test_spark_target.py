"""`recsys-eval run --target spark_thrift` without a cluster: what is refused before any work, and
the pieces that quote paths and map types (the runs on a real cluster: test_spark_cluster.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import CONFIGS, ROOT

from recsys_eval import spark_target
from recsys_eval.cli import main
from recsys_eval.errors import ConfigError, RecsysEvalError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # free once the socket closes: nothing listens


def _run(tmp_path: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "report.json"
    code = main(
        [
            "run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"),
            "--config", str(CONFIGS / "offline.ci.yaml"), "--output", str(out), *extra,
        ]
    )  # fmt: skip
    return code, out


def test_unreachable_server_is_refused_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    port = _closed_port()
    monkeypatch.setenv("RECSYS_EVAL_SPARK_THRIFT_HOST", "127.0.0.1")
    monkeypatch.setenv("RECSYS_EVAL_SPARK_THRIFT_PORT", str(port))
    code, _out = _run(tmp_path, "--target", "spark_thrift")
    err = capsys.readouterr().err
    assert code != 0
    assert f"cannot reach the Spark Thrift server at 127.0.0.1:{port}" in err
    assert "scripts/spark_cluster start" in err and "Nothing was loaded or written" in err
    assert "loaded exposures" not in err  # refused before the load
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "spark"], "use --target spark_thrift"),
        (["--target", "bigquery"], "expected one of duckdb, spark_thrift"),
        (["--target", "spark_thrift", "--memory-limit", "1GB"], "--memory-limit is DuckDB's"),
        (["--spark-stage-dir", "/tmp"], "--spark-stage-dir is for --target spark_thrift"),
        (["--target", "spark_thrift", "--spark-stage-dir", "/no/such/dir"], "not an existing"),
    ],
)
def test_flags_are_checked_before_any_work(tmp_path, monkeypatch, capsys, extra, message) -> None:
    monkeypatch.chdir(ROOT)
    code, _out = _run(tmp_path, *extra)
    assert code != 0
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_significance_is_refused_on_spark(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    cfg = tmp_path / "sig.yaml"
    cfg.write_text(
        "mode: offline\noffline:\n  metrics: [{name: precision, k: 2}]\n"
        "  significance: {enabled: true}\n"
    )
    out = tmp_path / "r.json"
    code = main(
        ["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config", str(cfg),
         "--output", str(out), "--target", "spark_thrift"]
    )  # fmt: skip
    assert code != 0
    assert "offline.significance is not available with --target spark_thrift" in (
        capsys.readouterr().err
    )
    assert not out.exists()


@pytest.mark.parametrize("bad", ["it's", 'a"b', "back\\slash", "tick`", "new\nline"])
def test_stage_paths_with_quotes_are_refused(tmp_path, bad) -> None:
    folder = tmp_path / bad
    folder.mkdir()
    with pytest.raises(ConfigError, match="quote, backslash or control character"):
        spark_target.check_stage_dir(folder)
    with pytest.raises(RecsysEvalError, match="unsafe staging path"):
        spark_target.spark_path_literal(folder)


def test_stage_path_literal_and_run_schemas(tmp_path) -> None:
    assert spark_target.check_stage_dir(tmp_path) == tmp_path.absolute()
    assert spark_target.spark_path_literal(tmp_path) == f"'{tmp_path}'"
    run = spark_target.SparkRun(endpoint=spark_target.Endpoint("h", 1, "u"), stage_root=tmp_path)
    other = spark_target.SparkRun(endpoint=run.endpoint, stage_root=tmp_path)
    assert run.schemas["marts"] != other.schemas["marts"]  # two runs never share a table
    assert set(run.dbt_vars()) == {
        "recsys_eval__raw_schema",
        "recsys_eval__staging_schema",
        "recsys_eval__marts_schema",
    }
    for name in run.schemas.values():
        assert name.isidentifier() and name.startswith("recsys_eval_run_")


@pytest.mark.parametrize(
    ("spark", "duck"),
    [
        ("string", "varchar"),
        ("bigint", "bigint"),
        ("int", "integer"),
        ("double", "double"),
        ("boolean", "boolean"),
        ("timestamp", "timestamp"),
        ("decimal(38,6)", "decimal(38,6)"),
        ("decimal(10, 2)", "decimal(10,2)"),
    ],
)
def test_mart_types(spark, duck) -> None:
    assert spark_target.duckdb_type(spark, "t.c") == duck


def test_nested_types_are_not_read_back() -> None:
    with pytest.raises(RecsysEvalError, match="t.c has Spark type 'array<string>'"):
        spark_target.duckdb_type("array<string>", "t.c")


def test_endpoint_port_is_checked(monkeypatch) -> None:
    monkeypatch.setenv("RECSYS_EVAL_SPARK_THRIFT_PORT", "10000; drop")
    with pytest.raises(ConfigError, match="RECSYS_EVAL_SPARK_THRIFT_PORT"):
        spark_target.Endpoint.from_env()
