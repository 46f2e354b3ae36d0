#!/usr/bin/env python3
"""The whole CLI at scale: JSONL on disk -> `recsys-eval run` (validate, load, dbt, report).

The benchmarks bench_offline.py / bench_experiment.py time the dbt models on raw tables filled
directly; this one answers "does a real run on N exposures complete on this machine, how long,
how much memory": it generates the same deterministic data (bench_offline.generate), writes it as
exposure.v1 / outcome.v1 JSONL, then runs the CLI as a user would and checks the report
(cases_evaluated = distinct request ids, nothing quarantined, the metrics equal those of the
models built on the directly-filled tables when --check is given).

    .venv/bin/python scripts/bench_cli.py --exposures 10000000 --mode offline

Figures: wall time of the run, its CPU time and the peak RSS of the run and its loader workers
(the largest single process; DuckDB's buffer pool is bounded by --memory-limit when given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import fmt_gb, run_measured, session_settings, tail
from bench_offline import generate
from bench_offline import parse_args as offline_args

PROJECT = Path(__file__).resolve().parents[1]

EXPOSURES_JSONL = """
copy (
    select
        request_id,
        user_id,
        strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') as ts,
        list_transform(items, lambda x: {{
            'item_id': x.item_id, 'rank': x.rank,
            'logging_propensity': x.logging_propensity, 'target_propensity': x.target_propensity
        }}) as items,
        coalesce(context, map()) as context,
        latency_ms,
        error
    from raw.exposures
    order by load_seq, line_no
) to '{path}' (format json)
"""
OUTCOMES_JSONL = """
copy (
    select
        request_id, user_id, item_id, event_type,
        coalesce(value, 0.0) as value,  -- outcome.v1 has no null value; clicks carry 0
        strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') as ts
    from raw.outcomes
    order by load_seq, line_no
) to '{path}' (format json)
"""


def write_jsonl(db: Path, folder: Path, threads: int) -> tuple[Path, Path]:
    exposures, outcomes = folder / "exposures.jsonl", folder / "outcomes.jsonl"
    con = duckdb.connect(str(db), read_only=True)
    try:
        session_settings(con, threads, None)
        con.execute(EXPOSURES_JSONL.format(path=exposures))
        con.execute(OUTCOMES_JSONL.format(path=outcomes))
    finally:
        con.close()
    return exposures, outcomes


def write_configs(folder: Path, exposures: Path, outcomes: Path) -> tuple[Path, Path]:
    dataset = folder / "dataset.yaml"
    dataset.write_text(
        f"exposures: {{type: jsonl, path: {json.dumps(str(exposures))}}}\n"
        f"outcomes: {{type: jsonl, path: {json.dumps(str(outcomes))}}}\n"
    )
    config = folder / "offline.yaml"
    config.write_text(
        "mode: offline\n"
        "offline:\n"
        "  slice_keys: [tenant, surface]\n"
        "  metrics:\n"
        + "".join(
            f"    - {{name: {name}, k: 10}}\n"
            for name in (
                "precision",
                "recall",
                "map",
                "ndcg",
                "hitrate",
                "mrr",
                "coverage",
                "novelty",
                "diversity",
            )
        )
    )
    return dataset, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="default: a temp dir, removed unless --keep")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recsys-eval-bench-cli-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        gen_args = offline_args(["--threads", str(args.threads)])
        source_db = workdir / "generated.duckdb"
        source_db.unlink(missing_ok=True)
        stats = generate(source_db, gen_args, args.exposures)
        t0 = time.perf_counter()
        exposures, outcomes = write_jsonl(source_db, workdir, args.threads)
        export_s = time.perf_counter() - t0
        source_db.unlink()
        size = exposures.stat().st_size + outcomes.stat().st_size
        print(
            f"-- {stats.exposure_rows:,} exposure lines, {stats.outcome_rows:,} outcome lines, "
            f"{size / 1e9:.2f} GB of JSONL (written in {export_s:.1f} s)"
        )
        dataset, config = write_configs(workdir, exposures, outcomes)
        report = workdir / "report.json"
        cmd = [
            str(PROJECT / ".venv" / "bin" / "recsys-eval"),
            "run",
            "--mode",
            "offline",
            "--dataset",
            str(dataset),
            "--config",
            str(config),
            "--output",
            str(report),
            "--database",
            str(workdir / "run.duckdb"),
        ]
        env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        measured = run_measured(cmd, env, workdir / "run.log")
        if measured.returncode != 0:
            print(tail(workdir / "run.log"), file=sys.stderr)
            print(f"FAIL: recsys-eval run exited {measured.returncode}", file=sys.stderr)
            return 1
        body = json.loads(report.read_text())
        cases = body["summary"]["cases_evaluated"]
        quarantined = [w for w in body.get("warnings", []) if w.startswith("quarantined_rows")]
        ok = cases == stats.requests and not quarantined
        print(
            f"recsys-eval run --mode offline: {measured.seconds:.1f} s wall, "
            f"{measured.cpu_seconds:.1f} s CPU, peak RSS {fmt_gb(measured.peak_rss_bytes)}, "
            f"{stats.exposure_rows / measured.seconds:,.0f} exposure lines/s end to end"
        )
        print(
            f"report: cases_evaluated {cases:,} (distinct request ids {stats.requests:,}), "
            f"quarantined {quarantined or 'none'}: {'OK' if ok else 'MISMATCH'}"
        )
        for metric in body["offline"]["metrics"]:
            print(f"   {metric['name']:<14} {metric['value']:.6f}")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


if __name__ == "__main__":
    sys.exit(main())
