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


# --- `recsys-eval run --target spark_thrift`: the golden configurations -------------------------
# Each runs twice through the CLI on the same data, on the cluster and on DuckDB (whose reports the
# other CLI tests check against the reference's goldens and peer libraries); the two reports must
# be equal apart from what names the run (RUN_NAMED), numbers to 1e-12. The sections the
# reference's goldens hold are checked against them too.
REFERENCE = Path(os.environ.get("RECSYS_EVAL_SHARED", REPO_ROOT.parent / "shared")) / "reference"
CONFIGS = REPO_ROOT / "configs"
TINY = ["--dataset", str(CONFIGS / "dataset.tiny.yaml")]
GOLDEN_RUNS: dict[str, tuple[list[str], str | None]] = {
    # the reference's CI: offline.ci.yaml against golden/offline.json (gates evaluated)
    "offline": (
        [*TINY, "--config", str(CONFIGS / "offline.ci.yaml"),
         "--baseline", str(REFERENCE / "golden" / "offline.json")],
        "offline",
    ),
    "experiment": (
        ["--mode", "experiment", *TINY, "--config", str(CONFIGS / "experiment.golden.yaml")],
        "experiment",
    ),
    "aa-check": (
        ["--mode", "aa-check", *TINY, "--config", str(CONFIGS / "aa-check.demo.yaml")],
        None,
    ),
    # the reference's golden OPE scenario (test_ope_cli.py: ips and snips to 1e-12)
    "ope": (["--mode", "ope", *TINY, "--config", str(CONFIGS / "ope.golden.yaml")], "ope"),
    # the reference's interleaving config: re-simulated team-draft lists from the rankers' lists
    "interleaving": (
        ["--dataset", str(CONFIGS / "dataset.interleaving.tiny.yaml"),
         "--config", str(REFERENCE / "configs" / "interleaving.default.yaml")],
        "interleaving",
    ),
    # the same config with the lists users saw (interleaved_exposure.v1): credited as logged; the
    # reference's golden report too (test_interleaving_cli.py)
    "interleaving-logged": (
        ["--dataset", str(CONFIGS / "dataset.interleaving.logged.tiny.yaml"),
         "--config", str(REFERENCE / "configs" / "interleaving.default.yaml")],
        "interleaving",
    ),
}  # fmt: skip
# git_commit too: the checkout's HEAD when each run starts, which moves between the two runs when
# a commit lands meanwhile (a shared working tree), and names the code, not a computed value
RUN_NAMED = ("run_id", "created_at", "timings", "git_commit")
# The one field not held to 1e-12: the sequential SRM's log Bayes factor is a sum of log-gamma
# values near ln Gamma(10000) ~ 8.2e4 (concentration 10000) that cancel to ~1e-4; a double holds
# 8.2e4 to 1.5e-11, so DuckDB's lgamma and Spark's Stirling series (macro experiment_log_gamma) each
# land within a few 1e-11 of the true value, and of each other. Checked to 1e-9 instead.
LOG_GAMMA_FIELDS = {"log_bayes_factor": 1e-9}
# how many CLI runs go to the cluster at once (each is mostly waiting on Spark)
PARALLEL_SPARK_RUNS = max(1, int(os.environ.get("RECSYS_EVAL_SPARK_TEST_PARALLEL", "2")))


@pytest.fixture(scope="module")
def golden_runs(
    spark_cluster: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> dict[str, dict[str, Any]]:
    """Every golden configuration through the CLI on both targets: {mode: {target: result}}
    (only the modes of the selected tests, e.g. with -k)."""
    import sys
    import time

    if not (REFERENCE / "golden").is_dir():
        pytest.skip(f"reference goldens not available in {REFERENCE}")
    root = tmp_path_factory.mktemp("golden_runs")
    env = {
        **os.environ,
        **{k: v for k, v in spark_cluster.items() if v},
        "RECSYS_EVAL_SPARK_THREADS": "2",
    }
    selected = {
        item.callspec.params["mode"]
        for item in request.session.items
        if hasattr(item, "callspec") and item.callspec.params.get("mode") in GOLDEN_RUNS
    }
    modes = [mode for mode in GOLDEN_RUNS if mode in selected] or list(GOLDEN_RUNS)
    jobs = [(mode, target) for target in ("spark_thrift", "duckdb") for mode in modes]
    pending, running, results = list(jobs), [], {}
    while pending or running:
        while True:
            busy = [job[0][1] for job in running]
            # up to PARALLEL_SPARK_RUNS on the cluster (each mostly waits on Spark) and one DuckDB
            # run beside them (CPU-bound)
            ready = [
                job
                for job in pending
                if busy.count(job[1]) < (PARALLEL_SPARK_RUNS if job[1] == "spark_thrift" else 1)
            ]
            if not ready:
                break
            pending.remove(ready[0])
            mode, target = ready[0]
            folder = root / f"{mode}-{target}"
            folder.mkdir()
            out = folder / "report.json"
            cmd = [sys.executable, "-m", "recsys_eval.cli", "run", *GOLDEN_RUNS[mode][0],
                   "--output", str(out), "--target", target]  # fmt: skip
            if target == "spark_thrift":  # staged here, so the test can see it removed
                (folder / "stage").mkdir()
                cmd += ["--spark-stage-dir", str(folder / "stage")]
            with (folder / "stderr").open("w") as err:
                proc = subprocess.Popen(
                    cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err
                )
            running.append(((mode, target), proc, out, time.monotonic()))
        done = [job for job in running if job[1].poll() is not None]
        for job in done:
            running.remove(job)
            (mode, target), proc, out, started = job
            results.setdefault(mode, {})[target] = {
                "code": proc.returncode,
                "stderr": (out.parent / "stderr").read_text(),
                "report": json.loads(out.read_text()) if out.exists() else None,
                "seconds": time.monotonic() - started,
                "folder": out.parent,
            }
            # each run's wall time (pytest -s shows it): what a mode costs the CI step
            print(f"golden run {mode} on {target}: {results[mode][target]['seconds']:.0f} s "
                  f"(exit {proc.returncode})", file=sys.stderr, flush=True)  # fmt: skip
        if not done:
            time.sleep(1)
    return results


def _without_run_names(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in RUN_NAMED}


def _pop_log_gamma_fields(value: Any, path: str = "$") -> dict[str, float]:
    """Remove the LOG_GAMMA_FIELDS from a report (in place); {path: value} of those removed."""
    found: dict[str, float] = {}
    if isinstance(value, dict):
        for key in list(value):
            if key in LOG_GAMMA_FIELDS and isinstance(value[key], float):
                found[f"{path}.{key}"] = value.pop(key)
            else:
                found.update(_pop_log_gamma_fields(value[key], f"{path}.{key}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.update(_pop_log_gamma_fields(item, f"{path}[{i}]"))
    return found


@pytest.mark.parametrize("mode", list(GOLDEN_RUNS))
def test_golden_report_on_spark_equals_duckdb(
    golden_runs: dict[str, dict[str, Any]], mode: str
) -> None:
    """`recsys-eval run --target spark_thrift` writes the DuckDB run's report, and its sections
    equal the reference's golden report where one exists."""
    from report_compare import assert_report_close

    spark, duck = golden_runs[mode]["spark_thrift"], golden_runs[mode]["duckdb"]
    assert duck["code"] == 0 and duck["report"] is not None, duck["stderr"][-3000:]
    assert spark["code"] == 0 and spark["report"] is not None, spark["stderr"][-3000:]
    # the run went through the cluster, and said so
    assert "on Spark (spark_thrift, 127.0.0.1:" in spark["stderr"], spark["stderr"]
    assert "read back" in spark["stderr"] and "staged 6 raw tables" in spark["stderr"]
    got, want = _without_run_names(spark["report"]), _without_run_names(duck["report"])
    assert set(got) == set(want)
    got_lg, want_lg = _pop_log_gamma_fields(got), _pop_log_gamma_fields(want)
    assert set(got_lg) == set(want_lg)
    for path, value in want_lg.items():
        tol = LOG_GAMMA_FIELDS[path.rsplit(".", 1)[-1]]
        assert math.isclose(got_lg[path], value, rel_tol=0, abs_tol=tol), (path, got_lg[path])
    assert_report_close(got, want)
    assert_report_close(want, got)  # nothing more on either side
    golden_name = GOLDEN_RUNS[mode][1]
    if golden_name is not None:  # the report's section of that name
        golden = json.loads((REFERENCE / "golden" / f"{golden_name}.json").read_text())
        expected = golden[golden_name]
        if mode == "offline":  # the baseline block names the golden's own run
            expected = {"metrics": expected["metrics"]}
        if mode == "ope":  # the golden lists ips and snips (value, variance); we list more
            ours = {e["name"]: e for e in got["ope"]["estimators"]}
            for estimator in expected["estimators"]:
                assert_report_close(ours[estimator["name"]], estimator)
            expected = {k: v for k, v in expected.items() if k != "estimators"}
        assert_report_close(got[golden_name], expected)  # every field of the golden's, to 1e-12
        assert_report_close(got["summary"]["cases_evaluated"], golden["summary"]["cases_evaluated"])
    if mode == "offline":
        assert [g["passed"] for g in got["gates"]] == [True]


def test_golden_runs_leave_nothing_on_the_cluster(
    golden_runs: dict[str, dict[str, Any]], spark_cluster: dict[str, str]
) -> None:
    """Each run's schemas are dropped and its staged Parquet removed at the end."""
    assert golden_runs  # the runs above have finished
    schemas = [r["namespace"] for r in _spark_rows(
        spark_cluster["RECSYS_EVAL_SPARK_THRIFT_PORT"], "show schemas"
    )]  # fmt: skip
    if spark_cluster["RECSYS_EVAL_SPARK_STATE"]:  # our own cluster: no other run uses it
        assert not [s for s in schemas if s.startswith("recsys_eval_run_")], schemas
    for runs in golden_runs.values():
        stage = runs["spark_thrift"]["folder"] / "stage"
        assert stage.is_dir() and not list(stage.iterdir()), stage
