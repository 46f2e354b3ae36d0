#!/usr/bin/env python3
"""A huge bad line in a JSONL load: the rest loads and memory stays bounded.

Writes valid outcome lines around one line of garbage of --line-mib MiB (default 1024: the
1 GiB line that used to take 8.5 GB and fail the whole load), runs `recsys-eval load` on it in a
child process, samples the resident memory of its process tree (/proc, every 0.1 s) and checks
that the line is quarantined (rule line_length, 64 KiB kept) and every other line loaded. Then
does the same for `recsys-eval validate`. Exits 1 when a peak exceeds --max-rss-gb.

    .venv/bin/python scripts/bench_load_long_line.py --line-mib 1024
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load_big import rss_bytes, tree_pids

GOOD = (
    '{{"request_id": "r{i}", "user_id": "u1", "item_id": "i{i}", "event_type": "click", '
    '"value": 1.0, "ts": "2025-01-01T00:00:00Z"}}\n'
)


def write(path: Path, line_mib: int, good: int) -> None:
    block = b"#" * (1 << 20)
    with path.open("wb") as fh:
        fh.write("".join(GOOD.format(i=i) for i in range(good)).encode())
        for _ in range(line_mib):
            fh.write(block)
        fh.write(b"\n")
        fh.write("".join(GOOD.format(i=i) for i in range(good, 2 * good)).encode())


def measure(cmd: list[str]) -> tuple[int, float, int, str]:
    """(exit code, seconds, peak RSS of the process tree in bytes, stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(rss_bytes(p) for p in tree_pids(proc.pid)))
        time.sleep(0.1)
    stderr = proc.stderr.read() if proc.stderr else ""
    return proc.returncode, time.perf_counter() - t0, peak, stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--line-mib", type=int, default=1024, help="size of the bad line")
    parser.add_argument("--good-lines", type=int, default=100_000, help="valid lines around it")
    parser.add_argument("--max-rss-gb", type=float, default=1.0, help="fail above this peak")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-long-line-"))
    gib = 1 << 30
    try:
        src, db = tmp / "outcomes.jsonl", tmp / "wh.duckdb"
        write(src, args.line_mib, args.good_lines // 2)
        size = src.stat().st_size
        cli = [sys.executable, "-m", "recsys_eval.cli"]
        load = ["load", "--schema", "outcome.v1", "--input", str(src), "--database", str(db)]
        code, seconds, peak_load, err = measure([*cli, *load, "--no-progress"])
        if code != 0:
            print(err, file=sys.stderr)
            return 1
        con = duckdb.connect(str(db), read_only=True)
        loaded = con.execute("select count(*) from raw.outcomes").fetchone()[0]
        quarantine = con.execute(
            "select line_bytes, octet_length(encode(raw_text)), errors from raw.quarantine"
        ).fetchall()
        con.close()
        print(f"file:            {size / gib:.2f} GiB, one line of {args.line_mib} MiB")
        print(f"load:            {seconds:.1f} s, {loaded:,} rows loaded, peak RSS tree "
              f"{peak_load / gib:.2f} GiB")  # fmt: skip
        code_v, seconds_v, peak_validate, err_v = measure(
            [*cli, "validate", "--schema", "outcome.v1", "--input", str(src)]
        )
        print(f"validate:        {seconds_v:.1f} s, exit {code_v}, peak RSS "
              f"{peak_validate / gib:.2f} GiB")  # fmt: skip
        [(line_bytes, kept, errors)] = quarantine
        rules = [e["rule"] for e in json.loads(errors)]
        ok = (
            loaded == args.good_lines // 2 * 2
            and line_bytes == args.line_mib << 20
            and kept == 64 << 10
            and rules == ["line_length"]
            and code_v == 1
            and "line too long" in err_v
        )
        if not ok:
            print(f"error: unexpected result {loaded, line_bytes, kept, rules, code_v}")
            return 1
        if max(peak_load, peak_validate) > args.max_rss_gb * gib:
            print(f"error: peak RSS above {args.max_rss_gb} GiB", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
