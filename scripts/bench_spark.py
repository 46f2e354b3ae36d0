"""The same `recsys-eval run` on DuckDB and on a Spark cluster (issue 19 item 5).

For each --exposures size N and each --modes mode (offline, experiment) this generates the
benchmark data of scripts/bench_race.py (same generators, same configs), runs the CLI once with
`--target duckdb` and once with `--target spark_thrift` against the Thrift server at
RECSYS_EVAL_SPARK_THRIFT_HOST/_PORT (start a local one with scripts/spark_cluster start), and prints
each run's wall time, its CPU time and peak RSS (the CLI with dbt and DuckDB, its children), and
whether the two reports agree (numbers to 1e-12, run names aside; LOOSER). On a local cluster
(scripts/spark_cluster, RECSYS_EVAL_SPARK_STATE) the Spark rows add the cluster's side: the CPU
seconds its JVMs (the Thrift server, which is the driver, the master, the workers and their
executors) used during the run, from /proc, and their resident memory at the end of the run. Runs
one at a time, DuckDB first; the generated data is shared by both targets.

    scripts/spark_cluster start
    .venv/bin/python scripts/bench_spark.py --exposures 1000000 --modes offline experiment
    .venv/bin/python scripts/bench_spark.py --exposures 2000      # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import BenchError, Measured, fmt_gb, run_measured, tail

PROJECT = Path(__file__).resolve().parents[1]
RUN_NAMED = ("run_id", "created_at", "timings", "git_commit")
# held to 1e-9, not 1e-12: the sequential SRM's log Bayes factor, a sum of log-gamma values near
# 8e4 that cancel (DuckDB's lgamma and Spark's Stirling series differ by a few 1e-11 there; the
# cluster tests hold it to the same bound), and its p-values, min(1, exp(-log Bayes factor)),
# which carry the same absolute error (4e-11 at 100k exposures)
LOOSER = {"log_bayes_factor": 1e-9}
LOOSER_UNDER = {"sequential_srm": 1e-9}


def differences(a: Any, b: Any, path: str = "$", out: list[str] | None = None) -> list[str]:
    """The paths where two reports differ (numbers beyond 1e-12, LOOSER's fields beyond theirs),
    run names aside."""
    out = [] if out is None else out
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if path == "$" and key in RUN_NAMED:
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only on one side")
            else:
                differences(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} vs {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            differences(x, y, f"{path}[{i}]", out)
    elif isinstance(a, float) or isinstance(b, float):
        tol = LOOSER.get(path.rsplit(".", 1)[-1], 1e-12)
        for key, looser in LOOSER_UNDER.items():
            if f".{key}." in path:
                tol = max(tol, looser)
        if a is None or b is None or not math.isclose(a, b, rel_tol=0, abs_tol=tol):
            out.append(f"{path}: {a} vs {b}")
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")
    return out


ROLES = ("thrift", "master", "worker1", "worker2")


def cluster_pids(state: Path) -> list[int]:
    """The local cluster's JVMs: the recorded daemons and every process below them (executors)."""
    pids: list[int] = []
    for role in ROLES:
        try:
            pid = int((state / "run" / f"{role}.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        todo = [pid]
        while todo:
            current = todo.pop()
            pids.append(current)
            # a JVM starts its children (a worker's executors) from any of its threads
            for children in Path(f"/proc/{current}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in children.read_text().split()]
    return pids


def cluster_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of `pids` (their own, not their waited-for children's)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile (an executor that finished)
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def cluster_rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run_cli(target: str, inputs: Any, mode: str, folder: Path) -> tuple[Measured, dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"report-{target}.json"
    cmd = ["nice", "-n", "10", str(PROJECT / ".venv" / "bin" / "recsys-eval"), "run",
           "--mode", mode, "--dataset", str(inputs.dataset), "--config", str(inputs.ours_config),
           "--output", str(output), "--target", target]  # fmt: skip
    env = {**os.environ, "RECSYS_EVAL_CACHE_DIR": str(folder / "cache"),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}  # fmt: skip
    measured = run_measured(cmd, env, folder / f"run-{target}.log")
    ok = (0, 2, 3) if mode == "experiment" else (0,)  # 2 hold, 3 roll back: a decision
    if measured.returncode not in ok or not output.exists():
        raise BenchError(
            f"{target} run exited {measured.returncode}:\n{tail(folder / f'run-{target}.log')}"
        )
    return measured, json.loads(output.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--exposures", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--modes", nargs="+", default=["offline", "experiment"],
                   choices=["offline", "experiment"])  # fmt: skip
    p.add_argument("--workdir", type=Path, help="kept; default a temporary folder")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads of the generators")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--click-rate", type=float, default=0.1)
    args = p.parse_args(argv)
    from bench_race import prepare

    from recsys_eval.spark_target import Endpoint

    endpoint = Endpoint.from_env()
    endpoint.check_reachable()
    state_text = os.environ.get("RECSYS_EVAL_SPARK_STATE", "").strip()
    state = Path(state_text) if state_text else None
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        root = args.workdir or Path(tmp)
        print(f"Spark Thrift server {endpoint.host}:{endpoint.port}; work folder {root}; cluster "
              f"state {state or '(not local: the cluster columns stay empty)'}")  # fmt: skip
        print("| mode | exposures | target | wall s | CPU s (CLI) | peak RSS (CLI) "
              "| cluster CPU s | cluster RSS at end | reports |")  # fmt: skip
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for n in args.exposures:
            for mode in args.modes:
                inputs = prepare(mode, n, args, root / f"n{n}")
                folder = root / f"n{n}" / f"{mode}-runs"
                duck, duck_report = run_cli("duckdb", inputs, mode, folder)
                pids = cluster_pids(state) if state else []
                cpu_before = cluster_cpu_seconds(pids)
                spark, spark_report = run_cli("spark_thrift", inputs, mode, folder)
                pids_after = cluster_pids(state) if state else []
                # executors live as long as the Thrift server: the same processes before and after
                cluster_cpu = cluster_cpu_seconds(pids_after) - cpu_before if pids else None
                cluster_rss = cluster_rss_bytes(pids_after) if pids_after else None
                diff = differences(spark_report, duck_report)
                verdict = "equal" if not diff else f"{len(diff)} differ: {diff[0]}"
                for target, m in (("duckdb", duck), ("spark_thrift", spark)):
                    on_spark = target == "spark_thrift"
                    ccpu = f"{cluster_cpu:.1f}" if on_spark and cluster_cpu is not None else ""
                    crss = fmt_gb(cluster_rss) if on_spark and cluster_rss is not None else ""
                    print(f"| {mode} | {n:,} | {target} | {m.seconds:.1f} | {m.cpu_seconds:.1f} | "
                          f"{fmt_gb(m.peak_rss_bytes)} | {ccpu} | {crss} | {verdict} |",
                          flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
