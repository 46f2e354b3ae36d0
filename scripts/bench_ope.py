#!/usr/bin/env python3
"""Benchmark OPE mode (dbt samples + the numpy estimators) against one hand-written DuckDB query
computing IPS on the same data.

For each --exposures size N this script

1. generates the raw tables with bench_offline's generator (SQL only, deterministic per seed:
   --items entries per list with logging propensity 1/(k+2) and target 1/(k+3) at array position k,
   clicks on --click-rate of the shown entries, duplicated request ids, orphans, ...);
2. runs `dbt run --select +fct_ope_samples +int_recsys_eval__ope_rows` (the plug-in's selectors)
   with the vars `recsys-eval run --mode ope` passes for the default OPE config (request unit,
   click reward, no clipping, no top_k, IPS; with --dr also SNIPS, DR, DM, SNDR and Switch-DR, as
   enable_snips / enable_dr of ../shared/reference/configs/ope.default.yaml; var values from
   recsys_eval.ope.plugin) in a child process (after one untimed parse, as a repeated run with
   the CLI's parse cache; --cold-parse times the full parse too), then the plug-in's `collect`
   (read the aggregates, every estimator, standard errors, the bootstrap, diagnostics, write
   fct_ope_estimates and fct_ope_diagnostics) in a second child;
3. runs ONE hand-written DuckDB statement computing IPS with the same semantics in a third child;
4. compares IPS and the sample count, and prints wall time, CPU time and peak RSS of each child.
   The ratio is (dbt wall + collect wall) / hand wall.

    .venv/bin/python scripts/bench_ope.py --exposures 1000000 10000000
    .venv/bin/python scripts/bench_ope.py --exposures 20000      # smoke run

Exit codes: 0 ok (targets are reported, not enforced); 1 IPS differs or a child failed;
3 --max-ratio exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_common import (
    GB,
    BenchError,
    DbtRun,
    HandRun,
    Measured,
    parse_note,
    run_dbt,
    run_measured,
    tail,
    write_profile,
)
from bench_offline import generate, run_hand

PROJECT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 3.0
EXIT_LIMIT = 3

HAND_IPS_SQL = """
with
items as (
    select load_seq, line_no, coalesce(request_id, '') as request_id, unnest(items) as it
    from raw.exposures
),
rewards as (
    -- the last click row per (request, item) in file order; its value when non-zero, else 1
    select
        coalesce(request_id, '') as request_id,
        coalesce(item_id, '') as item_id,
        arg_max(case when coalesce(value, 0) = 0 then 1.0 else value end, (load_seq, line_no)) as r
    from raw.outcomes
    where lower(coalesce(event_type, '')) = 'click'
    group by all
),
per_row as (
    select
        i.load_seq,
        i.line_no,
        avg(i.it.target_propensity / coalesce(i.it.logging_propensity, i.it.propensity)) as w,
        sum(coalesce(rw.r, 0)) as reward
    from items as i
    left join rewards as rw
        on i.request_id = rw.request_id and coalesce(i.it.item_id, '') = rw.item_id
    where coalesce(i.it.logging_propensity, i.it.propensity) > 0
        and i.it.target_propensity is not null
    group by i.load_seq, i.line_no
)
select count(*) as samples, avg(w * reward) as ips from per_row
"""

COLLECT_CHILD = """
import json, sys
from pathlib import Path
from recsys_eval.config import RunConfig, apply_defaults
from recsys_eval.modes import ModeContext
from recsys_eval.ope.plugin import collect
cfg = RunConfig(mode="ope", dataset={}, eval=apply_defaults(json.loads(sys.argv[3])),
                dataset_file=Path("bench.dataset.yaml"), eval_file=Path("bench.eval.yaml"))
out = collect(ModeContext(cfg=cfg, database=Path(sys.argv[1]), schema="recsys_eval_marts"))
Path(sys.argv[2]).write_text(json.dumps({"section": out.section, "cases": out.cases_evaluated,
                                         "warnings": out.warnings}))
"""


def ope_config(args: argparse.Namespace) -> dict[str, Any]:
    """The eval config the benchmark runs: the defaults, or with --dr the reference config's
    estimators (enable_snips and enable_dr: IPS, SNIPS, DR, DM, SNDR, Switch-DR)."""
    ope = {"enable_snips": True, "enable_dr": True} if args.dr else {}
    return {"mode": "ope", "ope": ope}


def ope_selectors() -> tuple[str, ...]:
    from recsys_eval.ope.plugin import SELECTORS

    return SELECTORS


def ope_dbt_vars(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_eval.config import apply_defaults
    from recsys_eval.ope.plugin import ope_vars_block

    return {
        "recsys_eval__source": "raw",
        "recsys_eval__using_assignments": False,
        "recsys_eval__using_rankers": False,
        "recsys_eval__ope": ope_vars_block(apply_defaults(ope_config(args))["ope"]),
    }


@dataclass
class SizeResult:
    n: int
    dbt: DbtRun
    collect: Measured
    hand: HandRun
    ips: float
    samples: int
    bootstrap: dict[str, Any] | None

    @property
    def ours_seconds(self) -> float:
        return self.dbt.measured.seconds + self.collect.seconds

    @property
    def ratio(self) -> float:
        return self.ours_seconds / max(self.hand.measured.seconds, 1e-9)

    @property
    def peak_rss(self) -> int:
        return max(self.dbt.measured.peak_rss_bytes, self.collect.peak_rss_bytes)


def bench_size(n: int, args: argparse.Namespace, workdir: Path, profiles: Path) -> SizeResult:
    run_dir = workdir / f"n{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    db = run_dir / "bench.duckdb"
    if args.reuse_data and db.exists():
        # the raw tables of an earlier --keep run of the same size (the models are rebuilt)
        print(f"\n-- {n:,} exposures: reusing {db}", flush=True)
    else:
        for stale in (db, Path(f"{db}.wal")):
            stale.unlink(missing_ok=True)
        print(f"\n-- {n:,} exposures: generating {db}", flush=True)
        data = generate(db, args, n)
        print(
            f"   {data.exposure_rows:,} exposure rows, {data.outcome_rows:,} outcomes, "
            f"{data.seconds:.1f} s, {data.db_bytes / 1e6:,.0f} MB",
            flush=True,
        )
    select = ope_selectors()
    print(f"-- dbt run --select {' '.join(select)}", flush=True)
    dbt = run_dbt(
        db, run_dir, args.project_dir, profiles, ope_dbt_vars(args), select,
        cold_parse=args.cold_parse,
    )  # fmt: skip
    print("-- estimators (recsys_eval.ope.plugin.collect)", flush=True)
    out = run_dir / "collect.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    collect = run_measured(
        [sys.executable, "-c", COLLECT_CHILD, str(db), str(out), json.dumps(ope_config(args))],
        env,
        run_dir / "collect.out",
    )
    if collect.returncode != 0 or not out.exists():
        raise BenchError(
            f"collect failed (exit {collect.returncode}):\n{tail(run_dir / 'collect.out')}"
        )
    result = json.loads(out.read_text())
    print("-- hand-written IPS query", flush=True)
    hand = run_hand(db, run_dir, HAND_IPS_SQL, args.threads, args.memory_limit)
    ips = next(e for e in result["section"]["estimators"] if e["name"] == "ips")
    res = SizeResult(n, dbt, collect, hand, ips["value"], result["cases"], ips.get("ci"))
    hand_row = hand.rows[0]
    problems = []
    if int(hand_row["samples"]) != res.samples:
        problems.append(f"samples: ours {res.samples} != hand {hand_row['samples']}")
    if abs(float(hand_row["ips"]) - res.ips) > args.tolerance:
        problems.append(f"ips: ours {res.ips!r} != hand {hand_row['ips']!r}")
    if not args.keep:
        for path in (db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)
    print(
        f"{'':<22}{'wall s':>9}{'cpu s':>9}{'peak RSS':>11}\n"
        f"{'dbt run':<22}{dbt.measured.seconds:>9.2f}{dbt.measured.cpu_seconds:>9.2f}"
        f"{dbt.measured.peak_rss_bytes / GB:>10.2f}G\n"
        f"{'estimators (python)':<22}{collect.seconds:>9.2f}{collect.cpu_seconds:>9.2f}"
        f"{collect.peak_rss_bytes / GB:>10.2f}G\n"
        f"{'hand-written IPS':<22}{hand.measured.seconds:>9.2f}{hand.measured.cpu_seconds:>9.2f}"
        f"{hand.measured.peak_rss_bytes / GB:>10.2f}G"
    )
    print(
        f"ratio (dbt + estimators) / hand: {res.ratio:.2f} (target <= {TARGET_RATIO:g}: "
        f"{'PASS' if res.ratio <= TARGET_RATIO else 'FAIL'}); samples {res.samples:,}; "
        f"ips {res.ips:.12g} (hand {float(hand_row['ips']):.12g}); slowest models: "
        + ", ".join(f"{m} {s:.2f}" for m, s in dbt.models[:4])
    )
    print(f"dbt: {parse_note(dbt)}")
    if problems:
        raise BenchError("; ".join(problems))
    print(f"IPS and sample count agree with the hand-written query (tolerance {args.tolerance:g})")
    return res


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--exposures", type=int, nargs="+", default=[1_000_000], metavar="N")
    parser.add_argument("--items", type=int, default=10, help="list length")
    parser.add_argument("--click-rate", type=float, default=0.03, help="per shown entry")
    parser.add_argument("--catalog", type=int, default=100_000, help="distinct item ids")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (all children)")
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 6GB")
    parser.add_argument("--project-dir", type=Path, default=PROJECT)
    parser.add_argument("--workdir", type=Path, help="None = a temp dir, removed unless --keep")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--reuse-data",
        action="store_true",
        help="with --keep --workdir: reuse the raw tables an earlier run generated there "
        "(same --exposures, --items, --click-rate, --catalog and --seed)",
    )
    parser.add_argument("--tolerance", type=float, default=1e-9, help="max |ours - hand| of IPS")
    parser.add_argument(
        "--dr",
        action="store_true",
        help="also SNIPS, DR, DM, SNDR and Switch-DR (the reference config's enable_snips and "
        "enable_dr): the reward model's pass over the items is timed too",
    )
    parser.add_argument("--max-ratio", type=float, help="exit 3 when the ratio exceeds it")
    parser.add_argument(
        "--cold-parse",
        action="store_true",
        help="time dbt's full project parse too (a first run); by default the project is parsed "
        "once untimed, as a repeated run on the same database finds it in the CLI's parse cache",
    )
    args = parser.parse_args(argv)
    if any(n <= 0 for n in args.exposures) or args.items <= 0 or args.threads <= 0:
        parser.error("--exposures, --items and --threads must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bench-ope-", dir="/tmp"))).resolve()
    created = args.workdir is None or not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[SizeResult] = []
    try:
        profiles = write_profile(workdir, args.project_dir, args.threads, args.memory_limit)
        print(f"workdir {workdir}; {args.items} items per list; DuckDB threads {args.threads}")
        results = [bench_size(n, args, workdir, profiles) for n in args.exposures]
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        if created and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'exposures':>12}{'ours s':>9}{'hand s':>9}{'ratio':>7}{'peak RSS':>10}")
    for r in results:
        print(
            f"{r.n:>12,}{r.ours_seconds:>9.2f}{r.hand.measured.seconds:>9.2f}{r.ratio:>7.2f}"
            f"{r.peak_rss / GB:>9.2f}G"
        )
    if args.max_ratio is not None and any(r.ratio > args.max_ratio for r in results):
        print(f"FAIL: ratio above --max-ratio {args.max_ratio}", file=sys.stderr)
        return EXIT_LIMIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
