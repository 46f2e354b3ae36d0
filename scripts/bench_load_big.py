#!/usr/bin/env python3
"""A multi-GB JSONL load with bounded memory: peak RSS of the whole process tree and lines/s.

Generates exposure lines (the shape of scripts/bench_load.py: 10 items, a context map) with
DuckDB until the file reaches --gigabytes, then runs `recsys-eval load` on it in a child process
and samples the resident memory of the loader and its validation workers (/proc, every 0.2 s).
Prints file size, lines, seconds, lines/s, the peak RSS of the tree (sum over processes at one
instant) and the largest single process; exits 1 when the peak tree RSS exceeds --max-rss-gb.

    .venv/bin/python scripts/bench_load_big.py --gigabytes 3 --data-dir /tmp/bench-big
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import GEN_SQL

PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_pids(root: int) -> list[int]:
    """root and every descendant (via /proc/*/stat parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def generate(path: Path, gigabytes: float) -> int:
    """Write about `gigabytes` GB of exposure lines; returns the number of lines."""
    con = duckdb.connect()
    try:
        sample = path.with_suffix(".sample")
        con.execute(GEN_SQL.format(n=20_000, out=str(sample)))
        per_line = sample.stat().st_size / 20_000
        sample.unlink()
        lines = math.ceil(gigabytes * 1e9 / per_line)
        con.execute(GEN_SQL.format(n=lines, out=str(path)))
    finally:
        con.close()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=3.0)
    parser.add_argument("--data-dir", type=Path, help="keep data here (default: a temp dir)")
    parser.add_argument("--max-rss-gb", type=float, default=4.0, help="fail above this peak")
    args = parser.parse_args()

    tmp = None
    if args.data_dir:
        data_dir = args.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="bench-load-big-")
        data_dir = Path(tmp)
    try:
        src = data_dir / f"exposures_{args.gigabytes:g}gb.jsonl"
        if not src.exists():
            t0 = time.perf_counter()
            generate(src, args.gigabytes)
            print(f"generated {src} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        with src.open("rb") as fh:
            lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))
        db = data_dir / "big.duckdb"
        for stale in (db, db.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "recsys_eval.cli", "load", "--schema", "exposure.v1"]
        cmd += ["--input", str(src), "--database", str(db), "--no-progress"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        peak_tree = peak_one = 0
        while proc.poll() is None:
            sizes = [rss_bytes(p) for p in tree_pids(proc.pid)]
            peak_tree = max(peak_tree, sum(sizes))
            peak_one = max(peak_one, max(sizes, default=0))
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            print(stderr, file=sys.stderr)
            return 1
        con = duckdb.connect(str(db), read_only=True)
        loaded = con.execute("select count(*) from raw.exposures").fetchone()[0]
        quarantined = con.execute("select count(*) from raw.quarantine").fetchone()[0]
        con.close()
        size = src.stat().st_size
        gb = 1 << 30
        print(f"file:           {size / 1e9:.2f} GB, {lines:,} lines")
        print(f"loaded:         {loaded:,} rows, {quarantined:,} quarantined")
        print(f"load:           {seconds:.1f} s, {lines / seconds:,.0f} lines/s")
        print(f"peak RSS tree:  {peak_tree / gb:.2f} GiB (loader + workers, sampled 5/s)")
        print(f"peak RSS one:   {peak_one / gb:.2f} GiB (largest single process)")
        print(f"database file:  {db.stat().st_size / 1e9:.2f} GB")
        if loaded + quarantined != lines:
            print("error: counts do not add up", file=sys.stderr)
            return 1
        if peak_tree > args.max_rss_gb * gb:
            print(f"error: peak RSS above {args.max_rss_gb} GiB", file=sys.stderr)
            return 1
        return 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
