#!/usr/bin/env python3
"""Benchmark the Postgres source path against Postgres's own `COPY ... TO STDOUT`.

Starts a throw-away PostgreSQL cluster (tests/python/pg_cluster.py; scripts/setup_postgres installs
the server), generates N exposure rows (the shape of scripts/bench_load.py: 10 items with
propensities, a context map, ~0.1 % rows that break the contract) into a table with one JSON
column (`--column jsonb|json|text|bytea`), then times

  (a) `COPY (select doc from exposures order by id) TO STDOUT`, read whole by the client
      (psycopg): the physical limit of getting the documents out of the server, and
  (b) `recsys_eval.sql_sources.load_sql_source`: the server-side cursor, every row validated
      like a JSONL line, loaded into a fresh DuckDB file with quarantine and ledger.

Prints rows/s for both, the ratio, the CPU seconds of each side (this process, its worker
processes, the Postgres server's backends), the load average before and after, and the peak RSS
of this process during the timed part (the generated lines are freed first; Linux clear_refs);
checks that every row was loaded or quarantined; exits 1 when (b) is below --min-rate rows/s.

    .venv/bin/python scripts/bench_sql_sources.py --rows 200000
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_load import GEN_SQL  # noqa: E402
from pg_cluster import find_bin, start_cluster  # noqa: E402

from recsys_eval import warehouse  # noqa: E402
from recsys_eval.sql_sources import load_sql_source  # noqa: E402

QUERY = "select doc from exposures order by id"


def generate(rows: int, folder: Path) -> list[bytes]:
    out = folder / "exposures.jsonl"
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    con.execute(GEN_SQL.format(n=rows, out=str(out)))
    con.close()
    return [ln for ln in out.read_bytes().split(b"\n") if ln]


def fill(cluster, column: str, lines: list[bytes]) -> None:
    with cluster.connect() as con:
        con.execute(f"create table exposures (id bigserial primary key, doc {column})")
        with con.cursor() as cur, cur.copy("copy exposures (doc) from stdin") as copy:
            for line in lines:
                copy.write_row((line if column == "bytea" else line.decode(),))
        con.execute("vacuum analyze exposures")


def server_cpu(cluster) -> float:
    """CPU seconds of the server: the postmaster, its live children and the children it reaped
    (a backend's CPU moves into the postmaster's cutime when it exits)."""
    tick = os.sysconf("SC_CLK_TCK")
    master = int((cluster.folder / "data" / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == master:
            total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
        elif int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Cpu:
    """CPU seconds spent in a block: this process, its reaped children, the server."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster

    def __enter__(self) -> Cpu:
        t = os.times()
        self.start = (t.user + t.system, t.children_user + t.children_system)
        self.server_start = server_cpu(self.cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        t = os.times()
        self.own = t.user + t.system - self.start[0]
        self.children = t.children_user + t.children_system - self.start[1]
        self.server = server_cpu(self.cluster) - self.server_start

    def __str__(self) -> str:
        return f"CPU s: own {self.own:.1f}, workers {self.children:.1f}, server {self.server:.1f}"


def time_copy(cluster) -> tuple[float, int, Cpu]:
    """Seconds to read every document with COPY TO STDOUT, the bytes read, the CPU seconds."""
    with Cpu(cluster) as cpu, cluster.connect() as con, con.cursor() as cur:
        t0 = time.perf_counter()
        n = 0
        with cur.copy(f"copy ({QUERY}) to stdout") as copy:
            for block in copy:
                n += len(block)
        seconds = time.perf_counter() - t0
    return seconds, n, cpu


def reset_peak_rss() -> None:
    """Start the peak RSS (VmHWM) afresh (Linux: /proc/self/clear_refs, 5)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def time_load(cluster, folder: Path, fetch_rows: int):
    db = folder / "bench.duckdb"
    db.unlink(missing_ok=True)
    con = warehouse.connect(db)
    try:
        with Cpu(cluster) as cpu:
            t0 = time.perf_counter()
            result = load_sql_source(
                con, "exposure.v1", "exposures", "postgres", cluster.dsn(), QUERY,
                fetch_rows=fetch_rows,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
        return seconds, result, cpu
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--column", choices=("jsonb", "json", "text", "bytea"), default="jsonb")
    parser.add_argument("--fetch-rows", type=int, default=5_000, help="rows per FETCH")
    parser.add_argument("--repeat", type=int, default=1, help="time each path this many times")
    parser.add_argument("--min-rate", type=float, default=0.0, help="rows/s of the load path")
    args = parser.parse_args()
    if find_bin() is None:
        print(
            "skipped: PostgreSQL server binaries not found (run scripts/setup_postgres)",
            file=sys.stderr,
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="rse-bench-sql-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        lines = generate(args.rows, folder)
        cluster = start_cluster()
        try:
            fill(cluster, args.column, lines)
            n, size = len(lines), sum(map(len, lines))
            del lines
            gc.collect()
            reset_peak_rss()
            print(
                f"{n:,} exposure rows ({size / n:,.0f} bytes each) in a {args.column} column; "
                f"setup {time.perf_counter() - t0:.1f} s"
            )
            load_before = os.getloadavg()
            copies = [time_copy(cluster) for _ in range(args.repeat)]
            loads = [time_load(cluster, folder, args.fetch_rows) for _ in range(args.repeat)]
            load_after = os.getloadavg()
        finally:
            cluster.stop()
    copy_s, _, copy_cpu = min(copies, key=lambda x: x[0])
    load_s, result, load_cpu = min(loads, key=lambda x: x[0])
    if result.lines_read != n or result.rows_loaded + result.rows_quarantined != n:
        print(f"FAIL: {result.lines_read} rows read of {n}", file=sys.stderr)
        return 1
    copy_rate, load_rate = n / copy_s, n / load_s
    rss = peak_rss_mb()
    mb = copies[0][1] / 1e6
    print(
        f"COPY ... TO STDOUT:       {copy_s:7.2f} s  {copy_rate:>10,.0f} rows/s  ({mb:,.0f} MB; "
        f"{copy_cpu})"
    )
    print(
        f"postgres source (load):   {load_s:7.2f} s  {load_rate:>10,.0f} rows/s  "
        f"({result.rows_loaded:,} loaded, {result.rows_quarantined:,} quarantined; {load_cpu})"
    )
    before, after = (" ".join(f"{x:.1f}" for x in v) for v in (load_before, load_after))
    print(f"load average (1, 5, 15 min) before: {before}; after: {after}")
    print(
        f"ratio load / COPY: {load_rate / copy_rate:.2f}; peak RSS {rss:,.0f} MB (timed part, "
        "this process; each worker process holds one batch)"
    )
    if load_rate < args.min_rate:
        print(f"FAIL: {load_rate:,.0f} rows/s < --min-rate {args.min_rate:,.0f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
