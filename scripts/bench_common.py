"""Helpers shared by the benchmarks in scripts/: child processes timed with their CPU time and
peak RSS, a DuckDB profile for the benchmark's own database, the timed `dbt run` (with an
untimed parse before it), and formatting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

GB = 1 << 30


class BenchError(Exception):
    pass


@dataclass
class Measured:
    seconds: float  # wall
    cpu_seconds: float  # user + system, the child and its waited-for descendants
    peak_rss_bytes: int
    returncode: int


@dataclass
class HandRun:
    measured: Measured
    query_seconds: float
    rows: list[dict[str, Any]]


def session_settings(
    con: duckdb.DuckDBPyConnection, threads: int, memory_limit: str | None
) -> None:
    con.execute("set enable_progress_bar = false")
    con.execute(f"set threads = {int(threads)}")
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")


def run_measured(cmd: list[str], env: dict[str, str], log: Path) -> Measured:
    """Run `cmd` with stdout and stderr to `log`; its wall time, CPU time and peak RSS."""
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds, cpu, usage.ru_maxrss * 1024, proc.returncode)


def tail(path: Path, chars: int = 3000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]


def write_profile(workdir: Path, project: Path, threads: int, memory_limit: str | None) -> Path:
    """The project's DuckDB output with the benchmark's DuckDB settings, in its own folder."""
    import yaml

    profiles = yaml.safe_load((project / "profiles.yml").read_text())
    name = next(iter(profiles))
    output = dict(profiles[name]["outputs"]["duckdb"])
    settings = dict(output.get("settings") or {})
    settings["threads"] = int(threads)
    if memory_limit:
        settings["memory_limit"] = memory_limit
    output["settings"] = settings
    folder = workdir / "profiles"
    folder.mkdir(exist_ok=True)
    text = yaml.safe_dump({name: {"target": "duckdb", "outputs": {"duckdb": output}}})
    (folder / "profiles.yml").write_text(text)
    return folder


def fmt_gb(n_bytes: int) -> str:
    return f"{n_bytes / GB:.2f} GB"


def dbt_parse_args(run_args: list[str]) -> list[str]:
    """`dbt parse` with the project, profile, target, target path, log path and vars of a
    `dbt run|build` argument list (parse takes no selection)."""
    keep = {
        "--project-dir", "--profiles-dir", "--target", "--target-path", "--log-path", "--vars",
    }  # fmt: skip
    out = ["parse"]
    i = 1  # run_args[0] is the subcommand
    while i < len(run_args):
        if run_args[i] in keep and i + 1 < len(run_args):
            out += run_args[i : i + 2]
            i += 2
        else:
            i += 1
    return [*out, "--no-use-colors"]


def warm_parse(
    dbt_main: list[str], run_args: list[str], env: dict[str, str], log: Path
) -> Measured:
    """Parse the project once, untimed by the caller, before the timed `dbt run`.

    The timed run then starts as a repeated run of the same configuration on the same database
    does with the CLI's parse cache (recsys_eval.dbt_runner): partial parsing, no full parse.
    What the cold parse costs is returned, so the benchmark can print it beside the warm figure.
    """
    measured = run_measured([*dbt_main, *dbt_parse_args(run_args)], env, log)
    if measured.returncode != 0:
        raise BenchError(f"dbt parse failed (exit {measured.returncode})\n{tail(log)}")
    return measured


_DBT_MAIN = "import sys; from dbt.cli.main import cli; sys.exit(cli())"


@dataclass
class DbtRun:
    measured: Measured  # the timed `dbt run`
    elapsed: float  # dbt's own elapsed_time (run_results.json): no start-up, no parse
    models: list[tuple[str, float]] = field(default_factory=list)  # (model, s), slowest first
    cold_parse: Measured | None = None  # the untimed full parse before it (None: timed inside)


def run_dbt(
    db: Path,
    run_dir: Path,
    project: Path,
    profiles: Path,
    dbt_vars: dict[str, Any],
    select: tuple[str, ...],
    cold_parse: bool = False,
) -> DbtRun:
    """`dbt run --select ...` on `db` in a child process, timed, with its own target and logs.

    Unless `cold_parse`, the project is first parsed untimed with the same vars, profile and
    database (warm_parse): the timed run then starts as a repeated run does with the CLI's parse
    cache. A failed node or exit code raises BenchError with dbt's tail.
    """
    target = run_dir / "dbt-target"
    args = [
        "run",
        "--project-dir", str(project),
        "--profiles-dir", str(profiles),
        "--target", "duckdb",
        "--target-path", str(target),
        "--log-path", str(run_dir / "dbt-logs"),
        "--vars", json.dumps(dbt_vars),
        "--no-use-colors",
        "--select", *select,
    ]  # fmt: skip
    env = {
        **os.environ,
        "RECSYS_EVAL_DUCKDB_PATH": str(db),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    main_cmd = [sys.executable, "-c", _DBT_MAIN]
    parse = None if cold_parse else warm_parse(main_cmd, args, env, run_dir / "dbt-parse.out")
    log = run_dir / "dbt.out"
    measured = run_measured([*main_cmd, *args], env, log)
    results_path = target / "run_results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    nodes = results.get("results", [])
    failed = [n for n in nodes if n.get("status") != "success"]
    if measured.returncode != 0 or failed or not nodes:
        detail = "; ".join(f"{n['unique_id']}: {n['status']} {n.get('message')}" for n in failed)
        raise BenchError(f"dbt run failed (exit {measured.returncode}): {detail}\n{tail(log)}")
    models = sorted(
        ((n["unique_id"].split(".")[-1], float(n["execution_time"])) for n in nodes),
        key=lambda m: -m[1],
    )
    return DbtRun(measured, float(results.get("elapsed_time", 0.0)), models, parse)


def parse_note(run: DbtRun) -> str:
    """How the timed run parsed the project, for the benchmark's output."""
    if run.cold_parse is None:
        return "full project parse included in the timed run (--cold-parse)"
    return (
        f"warm parse (as a repeated run with the CLI's parse cache); the untimed full parse "
        f"before it took {run.cold_parse.seconds:.2f} s"
    )
