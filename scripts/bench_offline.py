#!/usr/bin/env python3
"""Benchmark the offline-metric dbt models against one hand-written DuckDB query.

For each --exposures size N this script

1. generates a benchmark database with SQL only (range() + hash()-based pseudo-randomness, so a
   seed always gives the same data): N exposure rows in exactly the `raw.exposures` format that
   `recsys-eval load` writes (the loader's own DDL; load_id, load_seq, source_file, line_no
   included) and their outcomes in `raw.outcomes`, plus the two `raw.load_ledger` rows. Lists have
   --items entries (about 1.6 % of them are shorter, longer or empty; about 1.5 % have reversed or
   tied ranks; 0.5 % repeat an item), about 0.5 % of the rows repeat an earlier request_id (the
   first one wins), the context has tenant, surface and device keys (a few rows lack surface or
   the whole context); --click-rate of the shown entries are clicked (3 % of those clicked twice,
   10 % also converted with a value), a few requests convert an item that was not shown and a few
   outcomes are orphans; every outcome is timestamped after its exposure;
2. runs `dbt run` with the selection and vars of `recsys-eval run --mode offline`
   (+fct_data_quality +fct_data_quality_checks +fct_offline_metrics, vars from
   `recsys_eval.commands.run.dbt_vars`; models only, no tests; --select-offline-only keeps only
   +fct_offline_metrics) in a child process, with its own --target-path, --log-path and profile
   (the repo's DuckDB output plus the --threads / --memory-limit settings) under the workdir;
   the project is parsed once untimed first, so the timed run starts as a repeated run on the
   same database does with the CLI's parse cache (--cold-parse times the full parse too);
3. runs ONE hand-written DuckDB statement (the "physical limit") in another child process on the
   same raw tables, computing the same metrics with the same semantics globally and per segment;
4. compares every row of fct_offline_metrics (global and segments: values to --tolerance, case
   counts exactly) with the hand-written results, and prints a table.

What is measured, for both children alike: wall time from spawn to exit (dbt's includes its start
and project parse, which the CLI pays too; the ratio target uses it), CPU time (user + system; on
a busy machine a steadier signal than wall time) and peak RSS, the kernel's high-water mark of the
child's resident set: `ru_maxrss` from `os.wait4` on that child (it includes any descendants the
child waited for; unlike RUSAGE_CHILDREN it is per child, not a running maximum over all
children). The "inner" times are dbt's own elapsed_time (run_results.json, without start-up and
parse) and the statement alone; per-model times come from run_results.json.

    .venv/bin/python scripts/bench_offline.py --exposures 1000000 10000000
    .venv/bin/python scripts/bench_offline.py --exposures 20000     # smoke run, well under 1 min

Exit codes: 0 ok (targets are reported, not enforced); 1 a metric differs or a child failed;
2 bad arguments; 3 --max-ratio or --max-rss-gb exceeded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from bench_common import (
    GB,
    BenchError,
    DbtRun,
    HandRun,
    fmt_gb,
    parse_note,
    run_dbt,
    run_measured,
    session_settings,
    tail,
    write_profile,
)

PROJECT = Path(__file__).resolve().parents[1]
HAND_CHILD = "--run-hand-query-child"  # internal: how the parent starts the hand-written query
FAMILIES = (
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
CLI_SELECT = ("+fct_data_quality", "+fct_data_quality_checks", "+fct_offline_metrics")
OFFLINE_SELECT = ("+fct_offline_metrics",)
TARGET_RATIO = 2.0
TARGET_RSS_GB = 8.0
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # the CLI's rule for keys that reach SQL
EXIT_LIMIT = 3


# ---------------------------------------------------------------------------------------------
# Data generation

# u(i, k, tag): a uniform double in [0, 1); h(i, k, tag, m): an integer in [0, m). Both are pure
# functions of their arguments and the seed, so exposures and outcomes agree without a join.
MACROS_SQL = """
create or replace temp macro u(i, k, tag) as (hash(i, k, tag, {seed}) % 1000003)::double / 1000003;
create or replace temp macro h(i, k, tag, m) as (hash(i, k, tag, {seed}) % m)::bigint;
"""

EXPOSURES_SQL = """
insert into raw.exposures
with lines as (
    select
        i,
        u(i, 0, 1) as u_len,
        u(i, 0, 2) as u_rank,
        u(i, 0, 3) as u_dup_item,
        u(i, 0, 4) as u_dup_request,
        u(i, 0, 5) as u_context,
        case
            when u_len < 0.001 then 0
            when u_len < 0.006 then {short_len}
            when u_len < 0.016 then {long_len}
            else {items}
        end as n
    from range({n}) as t (i)
)
select
    'load-bench-exposures' as load_id,
    1 as load_seq,
    '/bench/exposures.jsonl' as source_file,
    i + 1 as line_no,
    -- 0.5 % of the lines repeat a request_id of the previous 1000 lines (the first one wins)
    'req-' || case
        when i > 0 and u_dup_request < 0.005 then i - 1 - h(i, 0, 6, least(i, 1000))
        else i
    end as request_id,
    'user-' || h(i, 0, 7, {users}) as user_id,
    timestamp '2025-01-01' + to_microseconds(i * {step_us}) as ts,
    list_transform(range(n), lambda k: {{
        -- log-uniform popularity over the catalog, shifted per position; 0.5 % of the lists end
        -- with a repeat of their first item
        'item_id': 'item-' || case
            when u_dup_item < 0.005 and k = n - 1 and k > 0
                then floor(pow({catalog}, u(i, 0, 8)))::bigint % {catalog}
            else (floor(pow({catalog}, u(i, k, 8)))::bigint + k * 7919) % {catalog}
        end,
        -- 1 % reversed ranks, 0.5 % ties (the stable sort keeps array order), else 1..n
        'rank': case
            when u_rank < 0.01 then n - k
            when u_rank < 0.015 then 1 + k // 2
            else k + 1
        end::bigint,
        'propensity': null::double,
        'logging_propensity': round(1.0 / (k + 2), 6),
        'target_propensity': round(1.0 / (k + 3), 6)
    }}) as items,
    case
        when u_context < 0.001 then null
        when u_context < 0.011 then map(
            ['tenant', 'device'],
            ['t' || h(i, 0, 9, 3), ['ios', 'android', 'web'][1 + h(i, 0, 11, 3)]]
        )
        else map(
            ['tenant', 'surface', 'device'],
            [
                't' || h(i, 0, 9, 3),
                ['home', 'search', 'pdp'][1 + h(i, 0, 10, 3)],
                ['ios', 'android', 'web'][1 + h(i, 0, 11, 3)]
            ]
        )
    end as context,
    h(i, 0, 12, 50000) / 100.0 as latency_ms,
    h(i, 0, 13, 500) = 0 as error
from lines
"""

OUTCOMES_SQL = """
insert into raw.outcomes
with shown as (
    select
        line_no,
        request_id,
        user_id,
        ts,
        unnest(items).item_id as item_id,
        generate_subscripts(items, 1) as k
    from raw.exposures
),
clicks as (
    select * from shown where u(line_no, k, 20) < {click_rate}
),
events as (
    select
        line_no, k, 0 as e, request_id, user_id, item_id, 'click' as event_type,
        null::double as value, ts + to_seconds(1 + h(line_no, k, 21, 600)) as ts
    from clicks
    union all
    -- 3 % of the clicks are clicked again (R is a set: no double counting)
    select
        line_no, k, 1, request_id, user_id, item_id, 'click',
        null, ts + to_seconds(601 + h(line_no, k, 22, 600))
    from clicks
    where u(line_no, k, 23) < 0.03
    union all
    -- 10 % of the clicks convert, with a value
    select
        line_no, k, 2, request_id, user_id, item_id, 'conversion',
        round(1 + 99 * u(line_no, k, 24), 2), ts + to_seconds(1201 + h(line_no, k, 25, 3600))
    from clicks
    where u(line_no, k, 26) < 0.1
    union all
    -- 0.2 % of the requests convert an item from anywhere in the catalog (mostly not shown)
    select
        line_no, 0, 3, request_id, user_id, 'item-' || h(line_no, 0, 27, {catalog}), 'conversion',
        round(1 + 99 * u(line_no, 0, 28), 2), ts + to_seconds(1 + h(line_no, 0, 29, 7200))
    from raw.exposures
    where u(line_no, 0, 30) < 0.002
    union all
    -- 0.1 % orphans: a request_id without exposure
    select
        line_no, 0, 4, 'orphan-' || request_id, user_id, 'item-' || h(line_no, 0, 31, {catalog}),
        'click', null, ts + to_seconds(1 + h(line_no, 0, 32, 600))
    from raw.exposures
    where u(line_no, 0, 33) < 0.001
)
select
    'load-bench-outcomes' as load_id,
    2 as load_seq,
    '/bench/outcomes.jsonl' as source_file,
    row_number() over (order by line_no, k, e) as line_no,
    request_id,
    user_id,
    item_id,
    event_type,
    value,
    ts
from events
"""

LEDGER_SQL = """
insert into raw.load_ledger (
    load_seq, load_id, schema_name, target_table, source_file, file_sha256, file_size,
    lines_read, rows_loaded, rows_quarantined, blank_lines, started_at, finished_at
)
select ?, ?, ?, ?, ?, ?, ?, count(*), count(*), 0, 0, now()::timestamp, now()::timestamp
from raw.{table}
"""


@dataclass
class DataStats:
    exposure_rows: int
    requests: int
    outcome_rows: int
    requests_with_outcome: int
    shown_click_rate: float
    seconds: float
    db_bytes: int


def generate(db: Path, args: argparse.Namespace, n: int) -> DataStats:
    """Create `db` with the raw tables (the loader's DDL) and fill them deterministically."""
    from recsys_eval.loader import ensure_raw_schema  # the parent only: keeps the child small

    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    try:
        session_settings(con, args.threads, args.memory_limit)
        ensure_raw_schema(con)
        con.execute(MACROS_SQL.format(seed=int(args.seed)))
        con.execute(
            EXPOSURES_SQL.format(
                n=n,
                items=args.items,
                short_len=max(1, args.items // 2),
                long_len=args.items + 2,
                users=max(1, n // 5),
                step_us=max(1, 30 * 86400 * 10**6 // max(n, 1)),
                catalog=args.catalog,
            )
        )
        con.execute(OUTCOMES_SQL.format(click_rate=float(args.click_rate), catalog=args.catalog))
        for seq, load_id, schema, table in (
            (1, "load-bench-exposures", "exposure.v1", "exposures"),
            (2, "load-bench-outcomes", "outcome.v1", "outcomes"),
        ):
            fake = f"bench_offline seed={args.seed} n={n} items={args.items} {table}"
            con.execute(
                LEDGER_SQL.format(table=table),
                [
                    seq,
                    load_id,
                    schema,
                    table,
                    f"/bench/{table}.jsonl",
                    hashlib.sha256(fake.encode()).hexdigest(),
                    0,
                ],
            )
        con.execute("checkpoint")
        stats = con.execute(
            """
            select
                (select count(*) from raw.exposures),
                (select count(distinct request_id) from raw.exposures),
                (select count(*) from raw.outcomes),
                (select count(distinct o.request_id) from raw.outcomes o
                    semi join raw.exposures e on o.request_id = e.request_id),
                (select count(*) filter (where event_type = 'click') from raw.outcomes)
                / (select sum(len(items)) from raw.exposures)
            """
        ).fetchone()
    finally:
        con.close()
    assert stats is not None
    return DataStats(
        exposure_rows=int(stats[0]),
        requests=int(stats[1]),
        outcome_rows=int(stats[2]),
        requests_with_outcome=int(stats[3]),
        shown_click_rate=float(stats[4]),
        seconds=time.perf_counter() - t0,
        db_bytes=db.stat().st_size,
    )


# ---------------------------------------------------------------------------------------------
# Child processes


def offline_dbt_vars(k: int, slice_keys: list[str]) -> dict[str, Any]:
    """The vars `recsys-eval run --mode offline` passes, from the CLI's own function."""
    from recsys_eval.commands.run import dbt_vars
    from recsys_eval.config import RunConfig, apply_defaults

    raw = {
        "mode": "offline",
        "offline": {
            "metrics": [{"name": f, "k": k} for f in FAMILIES],
            "slice_keys": slice_keys,
        },
    }
    cfg = RunConfig(
        mode="offline",
        dataset={},
        eval=apply_defaults(raw),
        dataset_file=Path("bench.dataset.yaml"),
        eval_file=Path("bench.eval.yaml"),
    )
    return dbt_vars(cfg)


# ---------------------------------------------------------------------------------------------
# The hand-written query


def segment_value_sql(value: str) -> str:
    r"""The models' escaping of a segment value: '\' -> '\\', then '|' -> '\|', '=' -> '\='."""
    for char in ("\\", "|", "="):
        value = f"replace({value}, '{char}', '\\{char}')"
    return value


def segment_key_sql(slice_keys: list[str], context: str) -> str:
    """The models' segment key: `key=value` parts sorted by `key=` and joined by '|'."""
    if not slice_keys:
        return "'__all__'"
    parts = []
    for key in sorted(slice_keys, key=lambda key: key + "="):
        parts.append(f"'{key}=' || " + segment_value_sql(f"coalesce({context}['{key}'], '')"))
    return " || '|' || ".join(parts)


HAND_SQL = """
with
first_rows as (
    -- file order = (load_seq, line_no); only the key columns go through the aggregate
    select coalesce(request_id, '') as request_id, min((load_seq, line_no)) as first_row
    from raw.exposures
    group by 1
),
cases as (
    -- one case per request_id: its first exposure in file order; L = item ids sorted stably by
    -- rank (a missing rank reads as 0, ties keep array order)
    select
        coalesce(e.request_id, '') as request_id,
        {segment_key} as segment_key,
        coalesce(
            case
                -- most lists are already in rank order: sorting them costs more than this check
                when list_sort(list_transform(e.items, lambda x: coalesce(x.rank, 0)))
                    = list_transform(e.items, lambda x: coalesce(x.rank, 0))
                    then list_transform(e.items, lambda x: coalesce(x.item_id, ''))
                else list_transform(
                    list_sort(list_transform(e.items, lambda x, p: {{
                        'rank': coalesce(x.rank, 0), 'pos': p, 'id': coalesce(x.item_id, '')
                    }})),
                    lambda x: x.id
                )
            end,
            []
        ) as l
    from raw.exposures as e
    semi join first_rows as f
        on coalesce(e.request_id, '') = f.request_id and (e.load_seq, e.line_no) = f.first_row
),
relevant as (
    -- R: distinct clicked or converted item ids per request_id
    select coalesce(request_id, '') as request_id, list(distinct coalesce(item_id, '')) as r
    from raw.outcomes
    where lower(coalesce(event_type, '')) in ('click', 'conversion')
    group by 1
),
judged as (
    -- only cases with a non-empty R: every per-case metric is 0 for the others
    select
        c.segment_key,
        len(c.l) as list_len,
        len(r.r) as rel_count,
        list_transform(c.l[1:{k}], lambda x: list_contains(r.r, x)::integer) as rel
    from cases as c
    inner join relevant as r on c.request_id = r.request_id
),
case_terms as (
    select
        segment_key,
        list_len,
        rel_count,
        len(rel) as lk,
        coalesce(list_sum(rel), 0) as hits,
        coalesce(list_sum(list_transform(rel, lambda f, i: f * list_sum(rel[1:i]) / i)), 0)
            as ap_sum,
        coalesce(list_sum(list_transform(rel, lambda f, i: f / log2(i + 1))), 0) as dcg,
        list_sum(list_transform(range(1, least(rel_count, {k}) + 1), lambda i: 1 / log2(i + 1)))
            as idcg,
        list_position(rel, 1) as first_hit
    from judged
),
case_values as (
    select
        segment_key,
        case when lk = 0 then 0.0 else hits / lk end as v_precision,
        hits / rel_count as v_recall,
        case when list_len = 0 then 0.0 else ap_sum / least(rel_count, {k}) end as v_map,
        case when list_len = 0 then 0.0 else dcg / idcg end as v_ndcg,
        case when hits > 0 then 1.0 else 0.0 end as v_hitrate,
        coalesce(1.0 / first_hit, 0.0) as v_mrr
    from case_terms
),
case_sums as (
    select
        grouping(segment_key) = 1 as is_global,
        segment_key,
        sum(v_precision) as s_precision,
        sum(v_recall) as s_recall,
        sum(v_map) as s_map,
        sum(v_ndcg) as s_ndcg,
        sum(v_hitrate) as s_hitrate,
        sum(v_mrr) as s_mrr
    from case_values
    group by grouping sets ((segment_key), ())
),
case_counts as (
    select grouping(segment_key) = 1 as is_global, segment_key, count(*) as cases
    from cases
    group by grouping sets ((segment_key), ())
),
segments as (
    -- a small integer per segment key: the big aggregate below then groups by (int, item)
    select segment_key, row_number() over () as segment_id
    from (select distinct segment_key from cases)
),
occurrences as (
    select s.segment_id, unnest(c.l) as item_id, generate_subscripts(c.l, 1) <= {k} as in_top_k
    from cases as c
    inner join segments as s on c.segment_key = s.segment_key
),
listed as (
    -- per segment and item: occurrences in the full lists (pop) and in Lk (top_k)
    select s.segment_key, o.item_id, o.pop, o.top_k
    from (
        select segment_id, item_id, count(*) as pop, count(*) filter (where in_top_k) as top_k
        from occurrences
        where item_id <> ''
        group by segment_id, item_id
    ) as o
    inner join segments as s on o.segment_id = s.segment_id
),
relevant_items as (
    select distinct c.segment_key, unnest(r.r) as item_id
    from cases as c
    inner join relevant as r on c.request_id = r.request_id
),
items as (
    -- per scope and item: occurrences in full lists (pop) and in Lk (top_k); items only in some
    -- R join the coverage universe with zero counts
    select
        grouping(segment_key) = 1 as is_global,
        segment_key,
        sum(pop) as pop,
        sum(top_k) as top_k
    from (
        select segment_key, item_id, pop, top_k from listed
        union all
        select segment_key, item_id, 0, 0 from relevant_items where item_id <> ''
    ) as universe
    group by grouping sets ((segment_key, item_id), (item_id))
),
item_terms as (
    select
        is_global,
        segment_key,
        pop,
        top_k,
        sum(pop) over scope as total_pop,
        sum(top_k) over scope as occurrences
    from items
    window scope as (partition by is_global, segment_key)
),
dataset_values as (
    select
        is_global,
        segment_key,
        count(*) filter (where top_k > 0) / count(*) as v_coverage,
        case
            when max(occurrences) = 0 then 0.0
            else sum(top_k * -log2(pop / total_pop)) filter (where top_k > 0) / max(occurrences)
        end as v_novelty,
        case
            when max(occurrences) = 0 or count(*) filter (where top_k > 0) <= 1 then 0.0
            else sum(-(top_k / occurrences) * log2(top_k / occurrences))
                    filter (where top_k > 0)
                / log2(count(*) filter (where top_k > 0))
        end as v_diversity
    from item_terms
    group by is_global, segment_key
)
select
    case when n.is_global then 'global' else 'segment' end as scope,
    case when n.is_global then '__all__' else n.segment_key end as segment_key,
    n.cases,
    coalesce(s.s_precision, 0) / n.cases as precision,
    coalesce(s.s_recall, 0) / n.cases as recall,
    coalesce(s.s_map, 0) / n.cases as map,
    coalesce(s.s_ndcg, 0) / n.cases as ndcg,
    coalesce(s.s_hitrate, 0) / n.cases as hitrate,
    coalesce(s.s_mrr, 0) / n.cases as mrr,
    coalesce(d.v_coverage, 0) as coverage,
    coalesce(d.v_novelty, 0) as novelty,
    coalesce(d.v_diversity, 0) as diversity
from case_counts as n
left join case_sums as s
    on n.is_global = s.is_global and n.segment_key is not distinct from s.segment_key
left join dataset_values as d
    on n.is_global = d.is_global and n.segment_key is not distinct from d.segment_key
order by scope, segment_key
"""


def hand_sql(k: int, slice_keys: list[str]) -> str:
    return HAND_SQL.format(k=int(k), segment_key=segment_key_sql(slice_keys, "e.context"))


def hand_child_main(argv: list[str]) -> int:
    """Child process: run the hand-written statement, write {seconds, columns, rows} as JSON."""
    db, sql_file, out, threads, memory_limit = argv
    con = duckdb.connect(db, read_only=True)
    session_settings(con, int(threads), memory_limit or None)
    t0 = time.perf_counter()
    cur = con.execute(Path(sql_file).read_text())
    rows = cur.fetchall()
    seconds = time.perf_counter() - t0
    columns = [d[0] for d in cur.description]
    con.close()
    Path(out).write_text(json.dumps({"seconds": seconds, "columns": columns, "rows": rows}))
    return 0


def run_hand(db: Path, run_dir: Path, sql: str, threads: int, memory_limit: str | None) -> HandRun:
    sql_file = run_dir / "hand.sql"
    sql_file.write_text(sql)
    out = run_dir / "hand.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        HAND_CHILD,
        str(db),
        str(sql_file),
        str(out),
        str(threads),
        memory_limit or "",
    ]
    log = run_dir / "hand.out"
    measured = run_measured(cmd, dict(os.environ), log)
    if measured.returncode != 0 or not out.exists():
        raise BenchError(f"hand-written query failed (exit {measured.returncode}):\n{tail(log)}")
    data = json.loads(out.read_text())
    rows = [dict(zip(data["columns"], r, strict=True)) for r in data["rows"]]
    return HandRun(measured, float(data["seconds"]), rows)


# ---------------------------------------------------------------------------------------------
# Comparison and report


def read_dbt_metrics(db: Path) -> dict[tuple[str, str, str], tuple[float, int]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = con.execute(
            "select table_schema from information_schema.tables "
            "where table_name = 'fct_offline_metrics' order by table_schema"
        ).fetchall()
        if not found:
            raise BenchError("dbt did not build fct_offline_metrics")
        rows = con.execute(
            f"select scope, segment_key, metric_name, metric_value, cases "
            f'from "{found[0][0]}".fct_offline_metrics'
        ).fetchall()
    finally:
        con.close()
    return {(r[0], r[1], r[2]): (float(r[3]), int(r[4])) for r in rows}


def hand_metrics(
    rows: list[dict[str, Any]], k: int
) -> dict[tuple[str, str, str], tuple[float, int]]:
    out = {}
    for row in rows:
        for family in FAMILIES:
            key = (row["scope"], row["segment_key"], f"{family}@{k}")
            out[key] = (float(row[family]), int(row["cases"]))
    return out


def compare(
    dbt: dict[tuple[str, str, str], tuple[float, int]],
    hand: dict[tuple[str, str, str], tuple[float, int]],
    tolerance: float,
) -> list[str]:
    """Every difference, as readable lines (empty when all rows agree)."""
    problems = []
    for key in sorted(set(dbt) | set(hand)):
        name = "/".join(key)
        if key not in dbt:
            problems.append(f"{name}: missing in fct_offline_metrics (hand {hand[key][0]!r})")
            continue
        if key not in hand:
            problems.append(f"{name}: missing in the hand-written result (dbt {dbt[key][0]!r})")
            continue
        (dv, dc), (hv, hc) = dbt[key], hand[key]
        if dc != hc:
            problems.append(f"{name}: cases dbt {dc} != hand {hc}")
        if not (math.isfinite(dv) and math.isfinite(hv)) or abs(dv - hv) > tolerance:
            problems.append(f"{name}: dbt {dv!r} != hand {hv!r} (diff {abs(dv - hv):.3g})")
    return problems


@dataclass
class SizeResult:
    n: int
    data: DataStats
    dbt: DbtRun
    hand: HandRun
    mismatches: list[str]

    @property
    def ratio(self) -> float:
        return self.dbt.measured.seconds / max(self.hand.measured.seconds, 1e-9)

    @property
    def peak_rss_bytes(self) -> int:
        return max(self.dbt.measured.peak_rss_bytes, self.hand.measured.peak_rss_bytes)


def passes(res: SizeResult) -> tuple[bool, bool]:
    """(ratio target met, peak RSS target met) for one size."""
    return (
        res.ratio <= TARGET_RATIO,
        res.dbt.measured.peak_rss_bytes < TARGET_RSS_GB * GB,
    )


def print_size(res: SizeResult, args: argparse.Namespace, scopes: int) -> None:
    d, m, h = res.data, res.dbt.measured, res.hand.measured
    print(
        f"\n== {res.n:,} exposures: {d.requests:,} requests, {d.outcome_rows:,} outcomes "
        f"({d.requests_with_outcome:,} requests with one, {d.shown_click_rate:.2%} clicks per "
        f"shown entry); generated in {d.seconds:.1f} s, database {d.db_bytes / 1e6:,.0f} MB"
    )
    print(f"{'':<14}{'wall s':>9}{'cpu s':>9}{'inner s':>9}{'peak RSS':>11}{'exposures/s':>14}")
    for label, ms, inner in (
        ("dbt run", m, res.dbt.elapsed),
        ("hand-written", h, res.hand.query_seconds),
    ):
        print(
            f"{label:<14}{ms.seconds:>9.2f}{ms.cpu_seconds:>9.2f}{inner:>9.2f}"
            f"{fmt_gb(ms.peak_rss_bytes):>11}{res.n / ms.seconds:>14,.0f}"
        )
    print(
        "  wall: child process spawn to exit; cpu: its user + system time; inner: dbt's own "
        "elapsed_time (no start-up, no parse) / the statement alone"
    )
    print(f"  dbt: {parse_note(res.dbt)}")
    ok_ratio, ok_rss = passes(res)
    print(
        f"ratio dbt/hand: wall {res.ratio:.2f}, cpu {m.cpu_seconds / h.cpu_seconds:.2f}, "
        f"inner {res.dbt.elapsed / res.hand.query_seconds:.2f}; target: wall ratio <= "
        f"{TARGET_RATIO:g}: {'PASS' if ok_ratio else 'FAIL'}, dbt peak RSS < "
        f"{TARGET_RSS_GB:g} GB: {'PASS' if ok_rss else 'FAIL'}"
    )
    slow = ", ".join(f"{name} {secs:.2f}" for name, secs in res.dbt.models[: args.top_models])
    print(f"slowest models (execution_time s, run_results.json): {slow}")
    if res.mismatches:
        print(f"METRICS DIFFER ({len(res.mismatches)}):")
        for line in res.mismatches[:40]:
            print(f"  {line}")
    else:
        print(
            f"metrics agree: {len(FAMILIES)} metrics x {scopes} scopes (global + segments) "
            f"within {args.tolerance:g}, case counts equal"
        )


def print_summary(results: list[SizeResult]) -> None:
    print(
        f"\n{'exposures':>12}{'dbt s':>9}{'hand s':>9}{'ratio':>7}{'dbt RSS':>10}"
        f"{'hand RSS':>10}{'dbt exp/s':>12}{'hand exp/s':>12}  target: ratio <= "
        f"{TARGET_RATIO:g}, peak RSS < {TARGET_RSS_GB:g} GB"
    )
    for r in results:
        m, h = r.dbt.measured, r.hand.measured
        ok_ratio, ok_rss = passes(r)
        verdict = "PASS" if ok_ratio and ok_rss else "FAIL"
        detail = f" (ratio {'ok' if ok_ratio else 'FAIL'}, RSS {'ok' if ok_rss else 'FAIL'})"
        print(
            f"{r.n:>12,}{m.seconds:>9.2f}{h.seconds:>9.2f}{r.ratio:>7.2f}"
            f"{m.peak_rss_bytes / GB:>9.2f}G{h.peak_rss_bytes / GB:>9.2f}G"
            f"{r.n / m.seconds:>12,.0f}{r.n / h.seconds:>12,.0f}  {verdict}{detail}"
            f"{'' if not r.mismatches else '  METRICS DIFFER'}"
        )


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--exposures", type=int, nargs="+", default=[1_000_000], metavar="N", help="sizes to run"
    )
    parser.add_argument("--items", type=int, default=10, help="list length")
    parser.add_argument("--click-rate", type=float, default=0.03, help="per shown entry")
    parser.add_argument("--k", type=int, default=10, help="k of every metric")
    parser.add_argument("--catalog", type=int, default=100_000, help="distinct item ids")
    parser.add_argument(
        "--slice-keys", default="tenant,surface", help="offline slice keys, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (all children)")
    parser.add_argument(
        "--memory-limit", help="DuckDB memory_limit, e.g. 6GB; None = DuckDB's own (80%% of RAM)"
    )
    parser.add_argument(
        "--select-offline-only",
        action="store_true",
        help="build only +fct_offline_metrics, not the CLI's whole offline-mode selection",
    )
    parser.add_argument(
        "--project-dir", type=Path, default=PROJECT, help="dbt project to run (a copy, a branch)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="None = a new temp dir under /tmp, removed unless --keep"
    )
    parser.add_argument("--keep", action="store_true", help="keep the workdir and databases")
    parser.add_argument("--tolerance", type=float, default=1e-9, help="max |dbt - hand|")
    parser.add_argument("--max-ratio", type=float, help="exit 3 when dbt/hand wall exceeds it")
    parser.add_argument("--max-rss-gb", type=float, help="exit 3 when dbt's peak RSS exceeds it")
    parser.add_argument("--top-models", type=int, default=6, help="slowest models to list")
    parser.add_argument(
        "--cold-parse",
        action="store_true",
        help="time dbt's full project parse too (a first run); by default the project is parsed "
        "once untimed, as a repeated run on the same database finds it in the CLI's parse cache",
    )
    args = parser.parse_args(argv)
    if any(n <= 0 for n in args.exposures) or args.items <= 0 or args.k <= 0:
        parser.error("--exposures, --items and --k must be > 0")
    if not 0 <= args.click_rate <= 1 or args.catalog <= 0 or args.threads <= 0:
        parser.error("--click-rate must be in [0, 1], --catalog and --threads > 0")
    args.slice_key_list = [s.strip() for s in args.slice_keys.split(",") if s.strip()]
    bad = [key for key in args.slice_key_list if not KEY_RE.match(key)]
    if bad:
        parser.error(f"--slice-keys: {bad} must match {KEY_RE.pattern}")
    if args.memory_limit and not re.match(r"^\d+(\.\d+)?\s*[KMGT]i?B$", args.memory_limit, re.I):
        parser.error("--memory-limit must look like 6GB or 512MiB")
    return args


def bench_size(
    n: int, args: argparse.Namespace, workdir: Path, profiles: Path, dbt_vars: dict[str, Any]
) -> SizeResult:
    run_dir = workdir / f"n{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    db = run_dir / "bench.duckdb"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    print(f"\n-- {n:,} exposures: generating {db}", flush=True)
    data = generate(db, args, n)
    select = OFFLINE_SELECT if args.select_offline_only else CLI_SELECT
    print(f"-- dbt run --select {' '.join(select)}", flush=True)
    dbt = run_dbt(
        db, run_dir, args.project_dir, profiles, dbt_vars, select, cold_parse=args.cold_parse
    )
    print("-- hand-written query", flush=True)
    hand = run_hand(
        db, run_dir, hand_sql(args.k, args.slice_key_list), args.threads, args.memory_limit
    )
    dbt_rows = read_dbt_metrics(db)
    mismatches = compare(dbt_rows, hand_metrics(hand.rows, args.k), args.tolerance)
    if not args.keep:
        for path in (db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)
    res = SizeResult(n, data, dbt, hand, mismatches)
    print_size(res, args, len(hand.rows))
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-offline-", dir="/tmp"))
    workdir = workdir.resolve()
    created = args.workdir is None or not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        profiles = write_profile(workdir, args.project_dir, args.threads, args.memory_limit)
        dbt_vars = offline_dbt_vars(args.k, args.slice_key_list)
        print(
            f"workdir {workdir}; {args.items} items per list, click rate {args.click_rate}, "
            f"k={args.k}, slice keys {args.slice_key_list}, seed {args.seed}, DuckDB threads "
            f"{args.threads}, memory_limit {args.memory_limit or 'DuckDB default'}"
        )
        results = [bench_size(n, args, workdir, profiles, dbt_vars) for n in args.exposures]
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        elif created:
            shutil.rmtree(workdir, ignore_errors=True)
    print_summary(results)
    if any(r.mismatches for r in results):
        print("FAIL: fct_offline_metrics and the hand-written query disagree", file=sys.stderr)
        return 1
    if args.max_ratio is not None and any(r.ratio > args.max_ratio for r in results):
        print(f"FAIL: dbt/hand ratio above --max-ratio {args.max_ratio}", file=sys.stderr)
        return EXIT_LIMIT
    if args.max_rss_gb is not None and any(
        r.dbt.measured.peak_rss_bytes > args.max_rss_gb * GB for r in results
    ):
        print(f"FAIL: dbt peak RSS above --max-rss-gb {args.max_rss_gb}", file=sys.stderr)
        return EXIT_LIMIT
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == HAND_CHILD:
        sys.exit(hand_child_main(sys.argv[2:]))
    sys.exit(main())
