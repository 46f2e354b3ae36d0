"""The models on a real Spark cluster: a standalone master, two one-core workers and the Thrift
JDBC server (scripts/spark_cluster), reached through dbt-spark's `thrift` method (profiles.yml
target spark_thrift) and PyHive.

ONE session-scoped fixture starts the cluster (about a minute on an idle 2-core machine) and stops
it at the end, also when a test fails (in RECSYS_EVAL_SPARK_TEST_STATE when set, else a temporary
folder); with RECSYS_EVAL_SPARK_REUSE=1 it uses the cluster already
listening on RECSYS_EVAL_SPARK_THRIFT_PORT instead (and leaves it running).

The reference is the DuckDB build of the same models on the same bundled seeds (the DuckDB marts
are checked against hand-derived values and peer libraries elsewhere): every number must agree to
1e-12, every text and count exactly.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dbt_helpers import DBT_BIN, REPO_ROOT, run_dbt

pytestmark = pytest.mark.spark

CLUSTER = REPO_ROOT / "scripts" / "spark_cluster"
# Offline metrics and data quality of the seeds: the marts, their models and seeds, no tests
# (the session-mode seeds build in scripts/test runs every test on Spark).
SELECT = ["+fct_offline_metrics", "+fct_data_quality"]
BOOTSTRAP_OFF = {"recsys_eval__offline_bootstrap": {"enabled": False}}
# Interleaving credited from the logged lists, with segments, on the tiny seeds (scripts/test ran
# this in a dbt-spark session before; here it shares the cluster).
INTERLEAVING_SELECT = ["+fct_interleaving_results+", "+fct_interleaving_credits"]
INTERLEAVING_VARS = {
    "recsys_eval__outcomes_seed": "recsys_eval_tiny_outcomes_interleaving",
    "recsys_eval__interleaving_source": "logged",
    "recsys_eval__interleaving_slice_keys": ["tenant"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment that points dbt and PyHive at a running cluster's Thrift server."""
    if os.environ.get("RECSYS_EVAL_SPARK_REUSE") == "1":
        port = int(os.environ.get("RECSYS_EVAL_SPARK_THRIFT_PORT", "10000"))
        if not _listening(port):
            pytest.fail(f"RECSYS_EVAL_SPARK_REUSE=1 but nothing listens on 127.0.0.1:{port}")
        yield {
            "RECSYS_EVAL_SPARK_THRIFT_PORT": str(port),
            "RECSYS_EVAL_SPARK_STATE": "",  # not ours: its folder is not checked
        }
        return
    # scripts/test names the folder (RECSYS_EVAL_SPARK_TEST_STATE) so that its exit trap can stop
    # the cluster even when pytest itself is killed.
    state = os.environ.get("RECSYS_EVAL_SPARK_TEST_STATE") or tmp_path_factory.mktemp("spark")
    env = {
        **os.environ,
        "RECSYS_EVAL_SPARK_STATE": str(state),
        "RECSYS_EVAL_SPARK_THRIFT_PORT": str(_free_port()),
        "RECSYS_EVAL_SPARK_MASTER_PORT": str(_free_port()),
    }
    try:
        subprocess.run([str(CLUSTER), "start"], env=env, check=True, timeout=600)
        yield {
            "RECSYS_EVAL_SPARK_THRIFT_PORT": env["RECSYS_EVAL_SPARK_THRIFT_PORT"],
            "RECSYS_EVAL_SPARK_STATE": env["RECSYS_EVAL_SPARK_STATE"],
        }
    finally:  # start stops what it began when it fails; this covers a failing test
        subprocess.run([str(CLUSTER), "stop"], env=env, check=False, timeout=120)


def _cursor(port: str) -> Any:
    from pyhive import hive

    return hive.connect(host="127.0.0.1", port=int(port), username="recsys_eval").cursor()


def _spark_rows(port: str, sql: str) -> list[dict[str, Any]]:
    cur = _cursor(port)
    cur.execute(sql)
    names = [d[0].split(".")[-1] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _duckdb_rows(database: Path, sql: str) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect(str(database), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def _assert_same(spark: list[dict[str, Any]], duck: list[dict[str, Any]], what: str) -> None:
    assert len(spark) == len(duck) > 0, what
    for i, (s, d) in enumerate(zip(spark, duck, strict=True)):
        assert set(s) == set(d), f"{what} row {i}: columns differ"
        for col, want in d.items():
            got = s[col]
            if isinstance(want, float) or isinstance(got, float):
                if want is None or got is None:
                    assert got is None and want is None, f"{what} row {i} {col}: {got} vs {want}"
                elif math.isnan(want):
                    assert math.isnan(got), f"{what} row {i} {col}: {got} vs NaN"
                else:
                    assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (
                        f"{what} row {i} {col}: {got} vs {want}"
                    )
            elif hasattr(want, "isoformat"):  # PyHive returns timestamps as text
                assert str(got)[:19] == want.isoformat(sep=" ")[:19], f"{what} row {i} {col}"
            else:
                assert got == want, f"{what} row {i} {col}: {got!r} vs {want!r}"


def test_cluster_has_two_workers_and_executors(spark_cluster: dict[str, str]) -> None:
    """A shuffle on the cluster runs on executors in two processes (one per worker)."""
    rows = _spark_rows(
        spark_cluster["RECSYS_EVAL_SPARK_THRIFT_PORT"],
        "select count(*) as n, count(distinct k) as keys from "
        "(select id % 7 as k from range(0, 100000, 1, 4) distribute by k)",
    )
    assert rows == [{"n": 100000, "keys": 7}]
    state = spark_cluster["RECSYS_EVAL_SPARK_STATE"]
    if state:  # our own cluster: each worker runs one executor of the Thrift server's app
        for worker in ("worker1", "worker2"):
            apps = list((Path(state) / "work" / worker).glob("app-*/*"))
            assert len(apps) == 1, f"{worker}: executors {apps}"
    status = subprocess.run(
        [str(CLUSTER), "status"],
        env={**os.environ, **{k: v for k, v in spark_cluster.items() if v}},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "thrift   listening" in status.stdout, status.stdout


def _build_on_cluster(
    cluster: dict[str, str], tmp_path: Path, select: list[str], dbt_vars: dict, extra: list[str]
) -> subprocess.CompletedProcess:
    """`dbt build` through the cluster's Thrift server (target spark_thrift, 2 threads)."""
    env = {
        **os.environ,
        **{k: v for k, v in cluster.items() if v},
        "DBT_PROFILES_DIR": str(REPO_ROOT),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "RECSYS_EVAL_SPARK_THREADS": "2",
    }
    return subprocess.run(
        [
            str(DBT_BIN), "build", "--target", "spark_thrift",
            "--project-dir", str(REPO_ROOT),
            "--target-path", str(tmp_path / "target_spark"),
            "--log-path", str(tmp_path / "logs_spark"),
            "--select", *select, "--vars", json.dumps(dbt_vars), *extra,
        ],
        env=env, capture_output=True, text=True, check=False, timeout=1500,
    )  # fmt: skip


def test_interleaving_logged_build_passes_on_cluster(
    spark_cluster: dict[str, str], tmp_path: Path
) -> None:
    """The interleaving models credited from logged lists, with their data tests and unit tests
    (hand-derived expectations), pass on the cluster."""
    build = _build_on_cluster(spark_cluster, tmp_path, INTERLEAVING_SELECT, INTERLEAVING_VARS, [])
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-2000:]
    assert "ERROR=0" in build.stdout and " PASS=" in build.stdout, build.stdout[-2000:]


def test_offline_and_data_quality_marts_equal_duckdb(
    spark_cluster: dict[str, str], tmp_path: Path
) -> None:
    """The seeds' offline metrics and data-quality marts built through the Thrift server (dbt
    threads 2) equal the DuckDB build's, row by row."""
    models_only = ["--resource-type", "seed", "model"]
    spark = _build_on_cluster(spark_cluster, tmp_path, SELECT, BOOTSTRAP_OFF, models_only)
    assert spark.returncode == 0, spark.stdout[-4000:] + spark.stderr[-2000:]
    duck, database = run_dbt(
        tmp_path, "duck", dbt_vars=BOOTSTRAP_OFF, select=SELECT,
        extra=["--resource-type", "seed", "model"],
    )  # fmt: skip
    assert duck.returncode == 0, duck.stdout[-4000:]
    port = spark_cluster["RECSYS_EVAL_SPARK_THRIFT_PORT"]
    for table, order in (
        ("fct_offline_metrics", "scope, segment_key, metric_position"),
        ("fct_data_quality", "scope, tenant, surface"),
    ):
        sql = f"select * from recsys_eval_marts.{table} order by {order}"
        _assert_same(_spark_rows(port, sql), _duckdb_rows(database, sql), table)
