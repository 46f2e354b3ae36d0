#!/usr/bin/env python3
"""Benchmark the interleaving credit models against one hand-written DuckDB query.

For each --impressions size N this script

1. generates a benchmark database with SQL only (hash()-based pseudo-randomness, so a seed always
   gives the same data): N logged interleaved lists in exactly the `raw.interleaved_exposures`
   format that `recsys-eval load` writes (interleaved_exposure.v1: --items items per list, teams
   drafted in pairs with a per-impression coin, context tenant/surface), about 0.3 % repeated
   request_ids (the first one wins), and their outcomes in `raw.outcomes`: every shown item is
   clicked with probability --click-rate, more often for team A (--a-lift), a few clicked twice,
   some conversions (ignored) and clicks on items not shown (ignored);
2. runs `dbt run` with the interleaving vars of `recsys-eval run --mode interleaving` (logged
   source) on the credit path, +fct_interleaving_impressions (staging, impressions,
   fct_interleaving_credits, fct_interleaving_impressions), in a child process with its own
   --target-path, --log-path and profile;
3. runs ONE hand-written DuckDB statement in another child process on the same raw tables that
   materialises the same per-impression credits (first list per request, first slot per item,
   clicks per team, winner);
4. compares the two tables row by row (credits_a, credits_b, winner per request_id) and prints
   wall time, CPU time and peak RSS (ru_maxrss of each child, from os.wait4) of both, and the
   ratio dbt / hand (wall, spawn to exit; dbt's includes its start-up, as the CLI pays). By
   default the project is parsed once, untimed, before the timed run: the timed run then starts
   like a repeated run of the same configuration on the same database, which finds its parse
   state in the CLI's parse cache (recsys_eval.dbt_runner). --cold-parse times a first run
   (+ ~3-4 s of full parse); the untimed parse's duration is printed either way.

    .venv/bin/python scripts/bench_interleaving.py --impressions 1000000
    .venv/bin/python scripts/bench_interleaving.py --impressions 20000 --max-ratio 10   # smoke

Exit codes: 0 ok; 1 results differ or a child failed; 2 bad arguments; 3 --max-ratio or
--max-rss-gb exceeded.
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
from typing import Any

import duckdb
from bench_common import (
    GB,
    BenchError,
    Measured,
    fmt_gb,
    run_measured,
    session_settings,
    tail,
    warm_parse,
    write_profile,
)

HAND_CHILD = "--run-hand-query-child"
_DBT_MAIN = "import sys; from dbt.cli.main import cli; sys.exit(cli())"
SELECT = ("+fct_interleaving_impressions",)
EXIT_LIMIT = 3

GENERATE_SQL = """
create or replace temp macro u(i, k, tag) as (hash(i, k, tag, {seed}) % 1000003)::double / 1000003;
insert into raw.interleaved_exposures
with base as (
    select
        i,
        case when u(i, 0, 'dup') < 0.003 and i > 10 then i - 7 else i end as request_no,
        u(i, 0, 'coin') < 0.5 as a_first
    from range({n}) as t(i)
)
select
    'bench-load' as load_id, cast(1 as bigint) as load_seq, 'interleaved.jsonl' as source_file,
    i + 1 as line_no,
    'r' || request_no as request_id,
    'u' || (hash(request_no, {seed}) % {users}) as user_id,
    timestamp '2025-01-01 00:00:00' + to_seconds(i % 86400) as ts,
    list_transform(range({items}), lambda s: {{
        'item_id': 'i' || (hash(request_no, s, {seed}) % 5000),
        'rank': s + 1,
        'team': case when (s % 2 = 0) = a_first then 'A' else 'B' end
    }}) as items,
    'team_draft' as algorithm,
    map {{'tenant': 't' || (i % 5), 'surface': 's' || (i % 3)}} as context
from base;
insert into raw.outcomes
with shown as (
    select request_id, user_id, unnest(items) as it, line_no
    from raw.interleaved_exposures
),
drawn as (
    select
        request_id, user_id, it.item_id as item_id, it.team as team, line_no, it.rank as item_rank,
        u(line_no, it.rank, 'click') as c
    from shown
)
select 'bench-load' as load_id, cast(2 as bigint) as load_seq, 'outcomes.jsonl' as source_file,
    row_number() over () as line_no, request_id, user_id, item_id,
    event_type, cast(1 as double) as value, timestamp '2025-01-01 00:00:00' as ts
from (
    select request_id, user_id, item_id, 'click' as event_type from drawn
    where c < {click_rate} * (case when team = 'A' then 1 + {a_lift} else 1 end)
    union all
    select request_id, user_id, item_id, 'CLICK' from drawn
    where c < {click_rate} * 0.05
    union all
    select request_id, user_id, item_id, 'conversion' from drawn
    where c < {click_rate} * 0.1
    union all
    select request_id, user_id, 'not-shown', 'click' from drawn
    where item_rank = 1 and c > 0.999
);
"""

HAND_SQL = """
create table hand_credits as
with first_lists as (
    select request_id, items,
        row_number() over (partition by request_id order by load_seq, line_no) as k
    from raw.interleaved_exposures
),
items as (
    select request_id, unnest(items) as it, generate_subscripts(items, 1) as pos
    from first_lists where k = 1
),
firsts as (
    select request_id, it.item_id as item_id,
        arg_min(it.team, it.rank * 100000 + pos) as team
    from items group by all
),
clicks as (
    select request_id, item_id, count(*) as clicks from raw.outcomes
    where lower(event_type) = 'click' group by all
),
per_request as (
    select f.request_id,
        sum(case when f.team = 'A' then c.clicks else 0 end) as credits_a,
        sum(case when f.team = 'B' then c.clicks else 0 end) as credits_b
    from firsts f join clicks c using (request_id, item_id)
    group by all
)
select l.request_id,
    coalesce(p.credits_a, 0) as credits_a, coalesce(p.credits_b, 0) as credits_b,
    case when coalesce(p.credits_a, 0) > coalesce(p.credits_b, 0) then 'A'
         when coalesce(p.credits_b, 0) > coalesce(p.credits_a, 0) then 'B' else 'tie' end as winner
from first_lists l left join per_request p using (request_id)
where l.k = 1
"""

COMPARE_SQL = """
select count(*) as requests,
    sum(case when d.request_id is null or h.request_id is null
        or d.credits_a != h.credits_a or d.credits_b != h.credits_b or d.winner != h.winner
        then 1 else 0 end) as mismatches,
    sum(case when h.winner = 'A' then 1 else 0 end) as wins_a,
    sum(case when h.winner = 'B' then 1 else 0 end) as wins_b,
    sum(case when h.winner = 'tie' then 1 else 0 end) as ties
from main.hand_credits h full outer join {schema}.fct_interleaving_impressions d using (request_id)
"""


def dbt_vars() -> dict[str, Any]:
    """The vars `recsys-eval run --mode interleaving` passes for logged lists."""
    from recsys_eval.commands.run import dbt_vars as run_vars
    from recsys_eval.config import RunConfig, apply_defaults
    from recsys_eval.interleaving.plugin import dbt_vars as plugin_vars

    cfg = RunConfig(
        mode="interleaving",
        dataset={"interleaving": {"exposures": {"type": "jsonl", "path": "x"}}},
        eval=apply_defaults({"mode": "interleaving", "interleaving": {"slice_keys": ["tenant"]}}),
        dataset_file=Path("bench.dataset.yaml"),
        eval_file=Path("bench.eval.yaml"),
    )
    return {**run_vars(cfg), **plugin_vars(cfg)}


def generate(db: Path, args: argparse.Namespace, n: int) -> None:
    from recsys_eval.loader import ensure_raw_schema

    con = duckdb.connect(str(db))
    session_settings(con, args.threads, args.memory_limit)
    ensure_raw_schema(con)  # every raw table, empty, with the loader's exact types
    con.execute(
        GENERATE_SQL.format(
            n=n, seed=args.seed, users=max(n // 4, 1), items=args.items,
            click_rate=args.click_rate, a_lift=args.a_lift,
        )
    )  # fmt: skip
    con.close()


def run_dbt(db: Path, run_dir: Path, args: argparse.Namespace) -> tuple[Measured, Measured | None]:
    """The timed `dbt run`, and the untimed cold parse before it (None with --cold-parse)."""
    project = Path(__file__).resolve().parents[1]
    profiles = write_profile(run_dir, project, args.threads, args.memory_limit)
    main_cmd = [sys.executable, "-c", _DBT_MAIN]
    cmd = [
        *main_cmd, "run",
        "--project-dir", str(project), "--profiles-dir", str(profiles), "--target", "duckdb",
        "--target-path", str(run_dir / "dbt-target"), "--log-path", str(run_dir / "dbt-logs"),
        "--vars", json.dumps(dbt_vars()), "--no-use-colors", "--select", *SELECT,
    ]  # fmt: skip
    env = {
        **os.environ,
        "RECSYS_EVAL_DUCKDB_PATH": str(db),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    parse = None
    if not args.cold_parse:
        parse = warm_parse(main_cmd, cmd[len(main_cmd) :], env, run_dir / "dbt-parse.out")
    log = run_dir / "dbt.out"
    measured = run_measured(cmd, env, log)
    if measured.returncode != 0:
        raise BenchError(f"dbt run failed (exit {measured.returncode}):\n{tail(log)}")
    return measured, parse


def hand_child_main(argv: list[str]) -> int:
    db, threads, memory_limit = argv
    con = duckdb.connect(db)
    session_settings(con, int(threads), memory_limit or None)
    t0 = time.perf_counter()
    con.execute("drop table if exists main.hand_credits")
    con.execute(HAND_SQL)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
    con.close()
    return 0


def run_hand(db: Path, run_dir: Path, args: argparse.Namespace) -> Measured:
    cmd = [sys.executable, str(Path(__file__).resolve()), HAND_CHILD, str(db),
           str(args.threads), args.memory_limit or ""]  # fmt: skip
    log = run_dir / "hand.out"
    measured = run_measured(cmd, dict(os.environ), log)
    if measured.returncode != 0:
        raise BenchError(f"hand-written query failed (exit {measured.returncode}):\n{tail(log)}")
    return measured


def compare(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        (schema,) = con.execute(
            "select table_schema from information_schema.tables "
            "where table_name = 'fct_interleaving_impressions'"
        ).fetchone()
        cur = con.execute(COMPARE_SQL.format(schema=f'"{schema}"'))
        cols = [d[0] for d in cur.description]
        return dict(zip(cols, (int(v) for v in cur.fetchone()), strict=True))
    finally:
        con.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impressions", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--click-rate", type=float, default=0.03)
    p.add_argument("--a-lift", type=float, default=0.2, help="relative click lift of team A")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-limit", default=None)
    p.add_argument("--workdir", type=Path, default=None, help="kept when given")
    p.add_argument("--max-ratio", type=float, default=None, help="fail (exit 3) above this ratio")
    p.add_argument(
        "--cold-parse",
        action="store_true",
        help="time dbt's full project parse too (a first run); by default the project is parsed "
        "once untimed, as a repeated run on the same database finds it in the CLI's parse cache",
    )
    p.add_argument("--max-rss-gb", type=float, default=None, help="fail (exit 3) above this RSS")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.impressions) or not 1 <= args.items <= 100:
        p.error("--impressions must be >= 1 and --items in [1, 100]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-interleaving-"))
    workdir.mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        for n in args.impressions:
            run_dir = workdir / f"n{n}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir()
            db = run_dir / "bench.duckdb"
            t0 = time.perf_counter()
            generate(db, args, n)
            gen_s = time.perf_counter() - t0
            dbt, cold = run_dbt(db, run_dir, args)
            hand = run_hand(db, run_dir, args)
            check = compare(db)
            ratio = dbt.seconds / hand.seconds
            dbt_inner = json.loads((run_dir / "dbt-target" / "run_results.json").read_text())[
                "elapsed_time"
            ]
            hand_inner = json.loads((run_dir / "hand.out").read_text().strip().splitlines()[-1])[
                "seconds"
            ]
            parse_note = (
                "(full parse timed: --cold-parse)"
                if cold is None
                else f"(warm parse; the untimed full parse took {cold.seconds:.2f}s)"
            )
            print(
                f"impressions={n} items={args.items} generate={gen_s:.1f}s\n"
                f"  dbt  wall={dbt.seconds:.2f}s cpu={dbt.cpu_seconds:.2f}s "
                f"peak_rss={fmt_gb(dbt.peak_rss_bytes)} {parse_note}\n"
                f"  hand wall={hand.seconds:.2f}s cpu={hand.cpu_seconds:.2f}s "
                f"peak_rss={fmt_gb(hand.peak_rss_bytes)}\n"
                f"  ratio dbt/hand wall={ratio:.2f} cpu={dbt.cpu_seconds / hand.cpu_seconds:.2f} "
                f"inner={dbt_inner / hand_inner:.2f} (dbt models {dbt_inner:.2f}s, "
                f"statement {hand_inner:.2f}s)\n"
                f"  requests={check['requests']} wins_a={check['wins_a']} wins_b={check['wins_b']} "
                f"ties={check['ties']} mismatches={check['mismatches']}"
            )
            if check["mismatches"] or check["wins_a"] <= check["wins_b"]:
                print("ERROR: the dbt credits differ from the hand-written query", file=sys.stderr)
                code = 1
            elif (args.max_ratio and ratio > args.max_ratio) or (
                args.max_rss_gb and dbt.peak_rss_bytes > args.max_rss_gb * GB
            ):
                print("ERROR: over --max-ratio or --max-rss-gb", file=sys.stderr)
                code = max(code, EXIT_LIMIT)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        code = 1
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == HAND_CHILD:
        sys.exit(hand_child_main(sys.argv[2:]))
    sys.exit(main())
