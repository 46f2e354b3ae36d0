#!/usr/bin/env python3
"""Benchmark the validated loader against DuckDB's own read_json (the physical limit).

Generates N exposure lines with DuckDB (10 items each with logging and target propensities, the
reference dataset's shape; a context map; ~0.1 % invalid lines), then times (a)
`recsys_eval.loader.load_file` into a fresh DuckDB file and (b) a plain `read_json` with explicit
columns into a table of the same file. Prints lines/s for both, the ratio and peak RSS; exits 1
when the loader is below --min-rate lines/s.

    .venv/bin/python scripts/bench_load.py --lines 1000000
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from recsys_eval import loader, warehouse

GEN_SQL = """
copy (
    select
        'req-' || i as request_id,
        case when i % 1000 = 7 then null else 'user-' || (i % 100003) end as user_id,
        strftime(timestamp '2025-01-01' + to_seconds(i % 2592000), '%Y-%m-%dT%H:%M:%SZ') as ts,
        list_transform(range(10), lambda k: {{
            'item_id': 'item-' || ((i * 7 + k * 13) % 50021),
            'rank': k + 1,
            'logging_propensity': round(1.0 / (k + 2), 6),
            'target_propensity': round(1.0 / (k + 3), 6)
        }}) as items,
        map {{
            'tenant': 't' || (i % 5),
            'surface': ['home', 'search', 'pdp'][1 + i % 3],
            'device': ['ios', 'android', 'web'][1 + (i // 3) % 3]
        }} as context,
        (i % 500) * 1.25 as latency_ms,
        i % 97 = 0 as error
    from range({n}) t(i)
) to '{out}' (format json)
"""

READ_COLUMNS = (
    "{'request_id': 'varchar', 'user_id': 'varchar', 'ts': 'varchar', "
    "'items': 'struct(item_id varchar, rank bigint, propensity double, "
    "logging_propensity double, target_propensity double)[]', "
    "'context': 'map(varchar, varchar)', 'latency_ms': 'double', 'error': 'boolean'}"
)


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, help="keep data here (default: a temp dir)")
    parser.add_argument("--min-rate", type=float, default=100_000.0, help="lines/s")
    parser.add_argument("--workers", type=int, default=None, help="loader pool size")
    args = parser.parse_args()

    tmp = None
    if args.data_dir:
        data_dir = args.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="bench-load-")
        data_dir = Path(tmp)
    try:
        src = data_dir / f"exposures_{args.lines}.jsonl"
        if not src.exists():
            t = time.perf_counter()
            gen = duckdb.connect()
            gen.execute("set enable_progress_bar = false")
            gen.execute(GEN_SQL.format(n=int(args.lines), out=str(src).replace("'", "''")))
            gen.close()
            print(
                f"generated {args.lines:,} lines ({src.stat().st_size / 1e6:,.0f} MB) in "
                f"{time.perf_counter() - t:.1f} s: {src}"
            )
        db = data_dir / "bench.duckdb"
        for p in (db, Path(str(db) + ".wal")):
            p.unlink(missing_ok=True)

        con = warehouse.connect(db)
        res = loader.load_file(con, "exposure.v1", src, workers=args.workers)
        load_rate = res.lines_read / res.seconds
        print(
            f"loader:    {res.lines_read:,} lines in {res.seconds:.2f} s = "
            f"{load_rate:,.0f} lines/s "
            f"({res.rows_loaded:,} loaded, {res.rows_quarantined:,} quarantined, "
            f"{res.blank_lines:,} blank)"
        )
        t = time.perf_counter()
        con.execute("checkpoint")
        checkpoint = time.perf_counter() - t
        rss_after_loader = peak_rss_mb()[0]
        print("  loader phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in res.phases.items()))
        print(
            f"  + checkpoint {checkpoint:.2f} s: "
            f"{res.lines_read / (res.seconds + checkpoint):,.0f} lines/s including it"
        )
        t = time.perf_counter()
        path_sql = str(src).replace("'", "''")
        con.execute(
            "create table plain as select request_id, user_id, "
            "timezone('UTC', try_cast(upper(ts) as timestamptz)) as ts, items, context, "
            f"latency_ms, error from read_json('{path_sql}', format = 'newline_delimited', "
            f"columns = {READ_COLUMNS})"
        )
        con.execute("checkpoint")
        secs = time.perf_counter() - t
        rows = con.execute("select count(*) from plain").fetchone()[0]
        con.close()
        raw_rate = rows / secs
        print(
            f"read_json: {rows:,} lines in {secs:.2f} s (incl. checkpoint) = "
            f"{raw_rate:,.0f} lines/s"
        )
        with_cp = res.lines_read / (res.seconds + checkpoint)
        print(
            f"ratio loader/read_json: {load_rate / raw_rate:.2f} "
            f"({with_cp / raw_rate:.2f} with the loader's checkpoint included)"
        )
        own, children = peak_rss_mb()
        print(
            f"peak RSS: {rss_after_loader:,.0f} MB this process during the loader, "
            f"{own:,.0f} MB overall; {children:,.0f} MB largest worker process"
        )
        # The gate counts the checkpoint: rows are only loaded once they are in the file.
        if with_cp < args.min_rate:
            print(
                f"FAIL: loader {with_cp:,.0f} lines/s (checkpoint included) < --min-rate "
                f"{args.min_rate:,.0f}"
            )
            return 1
        return 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
