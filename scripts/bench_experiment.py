#!/usr/bin/env python3
"""Benchmark the experiment-mode dbt models against one hand-written DuckDB query.

For each --exposures size N and each --arms count this script

1. generates a benchmark database with SQL only (range() + hash()-based pseudo-randomness, so a
   seed always gives the same data), in exactly the format `recsys-eval load` writes (the loader's
   own DDL, lineage columns and `raw.load_ledger` rows included):
   - `raw.exposures`: N rows, --items entries per list (1 % empty lists), about N / 8 users (so
     users have several requests), 0.5 % repeated request_ids (the first exposure wins), a context
     with tenant, surface and a numeric `pre_period_ctr` covariate (0.1 % without a context, 2 %
     without the covariate, 0.5 % with an unparseable one), latency_ms (0.5 % missing), error
     (0.5 % true, 0.1 % missing);
   - `raw.outcomes`: --click-rate of the shown entries are clicked (the arm above 50.5 % of the
     user hash gets a 5 % relative lift; 3 % clicked twice; 1 % spelled `Click`), 10 % of the
     clicks convert with a value (a multiple of 0.25, so every sum is exact in any order; 5 %
     without a value), 0.1 % orphan outcomes;
   - `raw.assignments` for experiment `exp_bench`: one row per request (1 % unassigned), the
     variant drawn per user with a planted SRM (2 arms 50.5/49.5, 3 arms 34/33/33 against equal
     expected weights); 2 % spelled `EXP_BENCH` (the filter ignores case), 0.5 % preceded by a row
     with another variant (the last row wins), 0.1 % followed by a row with an empty variant
     (skipped), 0.3 % rows of another experiment, 0.2 % assignments without an exposure.
   Exposures and outcomes are generated once per size; each arm count gets a copy of that file
   with its own assignments.
2. runs `dbt run` with the selection of `recsys-eval run --mode experiment` (+fct_data_quality
   +fct_data_quality_checks and +each of EXPERIMENT_MARTS; --select-experiment-only drops the two
   data quality marts) and the vars the CLI passes (`recsys_eval.commands.run.dbt_vars` on a
   typical config: control A, primary ctr, slice_keys [tenant], guardrail caps, fdr_bh, SRM with
   equal expected weights, CUPED on pre_period_ctr), in a child process with its own profile,
   --target-path and --log-path under the workdir and RECSYS_EVAL_DUCKDB_PATH set (the project
   is parsed once untimed first, as a repeated run on the same database finds its parse state in
   the CLI's parse cache; --cold-parse times the full parse too);
3. runs ONE hand-written DuckDB statement in another child process (same DuckDB threads and
   memory limit) on the same raw tables: per variant, globally and per tenant, exposures, clicks,
   conversions, revenue, ctr, conversion_rate, revenue per request, the pooled two-proportion z
   for ctr and conversion_rate against control A, latency p95 with the reference's floor-rank rule
   (0-based index floor(0.95 (n - 1)), from per-value counts and a running sum), error and empty
   rates, and the SRM observed rows per variant. The z-test p-values (2 (1 - Phi(|z|)) =
   erfc(|z| / sqrt 2)) and the SRM chi-square and its p-value (chi-square survival function,
   integer degrees of freedom, closed form) are computed in Python from what the query returns;
4. compares the overlapping numbers with fct_experiment_variant_metrics (global and tenant rows),
   fct_experiment_significance (z and p), fct_experiment_guardrails (global) and
   fct_experiment_srm (global): counts exactly, doubles to --tolerance (absolute, relative above
   1: |a - b| <= tol * max(1, |a|, |b|)); any difference exits 1.

What is measured, for both children alike (as in scripts/bench_offline.py): wall time from spawn to
exit (dbt's includes its start-up and project parse, which the CLI pays too; the ratio target
uses it), CPU time (user + system) and peak RSS (`ru_maxrss` from `os.wait4` on that child). The
"inner" times are dbt's own elapsed_time (run_results.json) and the statement alone; per-model
times come from run_results.json. Target: dbt wall time <= 2x the hand-written query's.

    .venv/bin/python scripts/bench_experiment.py --exposures 1000000 10000000 --arms 2 3
    .venv/bin/python scripts/bench_experiment.py --exposures 20000     # smoke run, well under 1 min

Exit codes: 0 ok (the ratio target is reported, not enforced unless --max-ratio is given); 1 a
number differs or a child failed; 2 bad arguments; 3 --max-ratio exceeded.
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
EXPERIMENT_ID = "exp_bench"
CONTROL = "A"
SLICE_KEY = "tenant"
COVARIATE_KEY = "pre_period_ctr"
P95 = 0.95
# Planted SRM: the arms' true shares of users (cumulative thresholds over a per-user uniform),
# tested against equal expected weights.
ARM_SHARES: dict[int, dict[str, float]] = {
    2: {"A": 0.505, "B": 0.495},
    3: {"A": 0.34, "B": 0.33, "C": 0.33},
}
LIFT_FROM = 0.505  # users whose hash is above this get the click lift (B of 2 arms, part of B, C)
LIFT = 0.05
DQ_SELECT = ("+fct_data_quality", "+fct_data_quality_checks")
TARGET_RATIO = 2.0
_DBT_MAIN = "import sys; from dbt.cli.main import cli; sys.exit(cli())"
EXIT_LIMIT = 3


# ---------------------------------------------------------------------------------------------
# Data generation

# u(i, k, tag): a uniform double in [0, 1); h(i, k, tag, m): an integer in [0, m). Pure functions
# of their arguments and the seed, so exposures, outcomes and assignments agree without a join.
MACROS_SQL = """
create or replace temp macro u(i, k, tag) as (hash(i, k, tag, {seed}) % 1000003)::double / 1000003;
create or replace temp macro h(i, k, tag, m) as (hash(i, k, tag, {seed}) % m)::bigint;
"""

EXPOSURES_SQL = """
insert into raw.exposures
with lines as (
    select
        i,
        h(i, 0, 7, {users}) as user_idx,
        u(i, 0, 1) as u_len,
        u(i, 0, 4) as u_dup_request,
        u(i, 0, 5) as u_context,
        case when u_len < 0.01 then 0 else {items} end as n
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
    'user-' || user_idx as user_id,
    timestamp '2025-01-01' + to_microseconds(i * {step_us}) as ts,
    list_transform(range(n), lambda k: {{
        'item_id': 'item-' || (floor(pow({catalog}, u(i, k, 8)))::bigint + k * 7919) % {catalog},
        'rank': (k + 1)::bigint,
        'propensity': null::double,
        'logging_propensity': round(1.0 / (k + 2), 6),
        'target_propensity': round(1.0 / (k + 3), 6)
    }}) as items,
    case
        when u_context < 0.001 then null
        -- 2 % without the covariate, 0.5 % with one that does not parse
        when u_context < 0.021 then map(
            ['tenant', 'surface'],
            ['t' || h(i, 0, 9, 3), ['home', 'search', 'pdp'][1 + h(i, 0, 10, 3)]]
        )
        else map(
            ['tenant', 'surface', 'pre_period_ctr'],
            [
                't' || h(i, 0, 9, 3),
                ['home', 'search', 'pdp'][1 + h(i, 0, 10, 3)],
                case
                    when u_context < 0.026 then 'n/a'
                    else round(0.2 * u(user_idx, 0, 41), 4)::varchar
                end
            ]
        )
    end as context,
    case when u(i, 0, 14) < 0.005 then null else h(i, 0, 12, 50000) / 100.0 end as latency_ms,
    case when u(i, 0, 15) < 0.001 then null else h(i, 0, 13, 200) = 0 end as error
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
        u(try_cast(substr(user_id, 6) as bigint), 0, 40) as w,
        unnest(items).item_id as item_id,
        generate_subscripts(items, 1) as k
    from raw.exposures
),
clicks as (
    select * from shown
    where u(line_no, k, 20) < {click_rate} * (1 + case when w >= {lift_from} then {lift} else 0 end)
),
events as (
    select
        line_no, k, 0 as e, request_id, user_id, item_id,
        case when u(line_no, k, 27) < 0.01 then 'Click' else 'click' end as event_type,
        null::double as value, ts + to_seconds(1 + h(line_no, k, 21, 600)) as ts
    from clicks
    union all
    -- 3 % of the clicks are clicked again (events are counts: both count)
    select
        line_no, k, 1, request_id, user_id, item_id, 'click',
        null, ts + to_seconds(601 + h(line_no, k, 22, 600))
    from clicks
    where u(line_no, k, 23) < 0.03
    union all
    -- 10 % of the clicks convert, with a value that is a multiple of 0.25 (5 % without a value)
    select
        line_no, k, 2, request_id, user_id, item_id, 'conversion',
        case when u(line_no, k, 28) < 0.05 then null else (1 + h(line_no, k, 24, 400)) / 4.0 end,
        ts + to_seconds(1201 + h(line_no, k, 25, 3600))
    from clicks
    where u(line_no, k, 26) < 0.1
    union all
    -- 0.1 % orphans: a request_id without exposure
    select
        line_no, 0, 4, 'orphan-' || request_id, user_id, 'item-0', 'click', null,
        ts + to_seconds(1 + h(line_no, 0, 32, 600))
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

ASSIGNMENTS_SQL = """
insert into raw.assignments
with firsts as (
    -- one candidate assignment per request: its first exposure's user, tenant and ts
    select
        line_no as r,
        request_id,
        user_id,
        ts,
        context['tenant'] as tenant,
        u(try_cast(substr(user_id, 6) as bigint), 0, 40) as w
    from raw.exposures
    qualify row_number() over (partition by request_id order by line_no) = 1
),
arms as (
    select
        *,
        {variant_case} as variant,
        -- a wrong variant for the 0.5 % preceded by another row: the next arm
        {other_case} as other_variant
    from firsts
),
rows_ as (
    -- 1 % of the requests are never assigned
    select r, 1 as e, request_id, user_id, ts, tenant, variant,
        case when u(r, 0, 51) < 0.02 then 'EXP_BENCH' else 'exp_bench' end as experiment_id
    from arms where u(r, 0, 50) >= 0.01
    union all
    -- 0.5 %: an earlier row with another variant (the last row wins)
    select r, 0, request_id, user_id, ts, tenant, other_variant, 'exp_bench'
    from arms where u(r, 0, 50) >= 0.01 and u(r, 0, 52) < 0.005
    union all
    -- 0.1 %: a later row with an empty variant (missing, skipped)
    select r, 2, request_id, user_id, ts, tenant, '', 'exp_bench'
    from arms where u(r, 0, 50) >= 0.01 and u(r, 0, 53) < 0.001
    union all
    -- 0.3 %: a row of another experiment (filtered out)
    select r, 3, request_id, user_id, ts, tenant, other_variant, 'exp_other'
    from arms where u(r, 0, 54) < 0.003
    union all
    -- 0.2 %: an assignment without exposure (counts in SRM only)
    select r, 4, 'noexp-' || request_id, user_id, ts, tenant, variant, 'exp_bench'
    from arms where u(r, 0, 55) < 0.002
)
select
    'load-bench-assignments' as load_id,
    3 as load_seq,
    '/bench/assignments.jsonl' as source_file,
    row_number() over (order by r, e) as line_no,
    experiment_id,
    variant,
    request_id,
    user_id,
    ts,
    case when tenant is null then null else map(['tenant'], [tenant]) end as context
from rows_
"""

LEDGER_SQL = """
insert into raw.load_ledger (
    load_seq, load_id, schema_name, target_table, source_file, file_sha256, file_size,
    lines_read, rows_loaded, rows_quarantined, blank_lines, started_at, finished_at
)
select ?, ?, ?, ?, ?, ?, ?, count(*), count(*), 0, 0, now()::timestamp, now()::timestamp
from raw.{table}
"""


def variant_case(arms: int) -> tuple[str, str]:
    """SQL for the true variant of a user hash `w` and for 'another' variant (the next arm)."""
    shares = ARM_SHARES[arms]
    names = list(shares)
    edges, acc = [], 0.0
    for name in names[:-1]:
        acc += shares[name]
        edges.append((round(acc, 9), name))
    true = " ".join(f"when w < {edge!r} then '{name}'" for edge, name in edges)
    other = " ".join(
        f"when w < {edge!r} then '{names[(names.index(name) + 1) % len(names)]}'"
        for edge, name in edges
    )
    return f"case {true} else '{names[-1]}' end", f"case {other} else '{names[0]}' end"


@dataclass
class DataStats:
    exposure_rows: int
    requests: int
    users: int
    outcome_rows: int
    assignment_rows: int = 0
    assigned_requests: int = 0
    seconds: float = 0.0
    db_bytes: int = 0


def ledger_row(con: duckdb.DuckDBPyConnection, seq: int, table: str, schema: str, tag: str) -> None:
    con.execute(
        LEDGER_SQL.format(table=table),
        [
            seq,
            f"load-bench-{table}",
            schema,
            table,
            f"/bench/{table}.jsonl",
            hashlib.sha256(tag.encode()).hexdigest(),
            0,
        ],
    )


def generate_base(db: Path, args: argparse.Namespace, n: int) -> DataStats:
    """Create `db` with the raw tables (the loader's DDL), exposures and outcomes."""
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
                users=max(1, n // 8),
                step_us=max(1, 14 * 86400 * 10**6 // max(n, 1)),
                catalog=args.catalog,
            )
        )
        con.execute(
            OUTCOMES_SQL.format(click_rate=float(args.click_rate), lift_from=LIFT_FROM, lift=LIFT)
        )
        tag = f"bench_experiment seed={args.seed} n={n} items={args.items}"
        ledger_row(con, 1, "exposures", "exposure.v1", f"{tag} exposures")
        ledger_row(con, 2, "outcomes", "outcome.v1", f"{tag} outcomes")
        con.execute("checkpoint")
        stats = con.execute(
            """
            select
                (select count(*) from raw.exposures),
                (select count(distinct request_id) from raw.exposures),
                (select count(distinct user_id) from raw.exposures),
                (select count(*) from raw.outcomes)
            """
        ).fetchone()
    finally:
        con.close()
    assert stats is not None
    return DataStats(*(int(s) for s in stats), seconds=time.perf_counter() - t0)


def add_assignments(
    db: Path, args: argparse.Namespace, n: int, arms: int, base: DataStats
) -> DataStats:
    """Fill raw.assignments of `db` (a copy of the base file) for `arms` arms."""
    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    try:
        session_settings(con, args.threads, args.memory_limit)
        con.execute(MACROS_SQL.format(seed=int(args.seed)))
        true_case, other_case = variant_case(arms)
        con.execute(ASSIGNMENTS_SQL.format(variant_case=true_case, other_case=other_case))
        tag = f"bench_experiment seed={args.seed} n={n} arms={arms} assignments"
        ledger_row(con, 3, "assignments", "assignment.v1", tag)
        con.execute("checkpoint")
        stats = con.execute(
            "select count(*), count(distinct request_id) filter (where variant <> '' "
            "and lower(experiment_id) = ?) from raw.assignments",
            [EXPERIMENT_ID],
        ).fetchone()
    finally:
        con.close()
    assert stats is not None
    return DataStats(
        exposure_rows=base.exposure_rows,
        requests=base.requests,
        users=base.users,
        outcome_rows=base.outcome_rows,
        assignment_rows=int(stats[0]),
        assigned_requests=int(stats[1]),
        seconds=base.seconds + time.perf_counter() - t0,
        db_bytes=db.stat().st_size,
    )


# ---------------------------------------------------------------------------------------------
# Child processes (run_measured, tail and write_profile as in scripts/bench_offline.py)


def experiment_config(arms: int) -> dict[str, Any]:
    """A typical experiment config (the shape of configs/experiment.demo.yaml)."""
    return {
        "mode": "experiment",
        "experiment": {
            "experiment_id": EXPERIMENT_ID,
            "control_variant": CONTROL,
            "primary_metrics": ["ctr"],
            "slice_keys": [SLICE_KEY],
            "guardrails": {
                "max_latency_p95_ms": 480,
                "max_error_rate": 0.01,
                "max_empty_rate": 0.02,
            },
            "cuped": {"enabled": True, "covariate_key": COVARIATE_KEY},
            "multiple_comparisons": {"method": "fdr_bh", "alpha": 0.05},
            "srm": {
                "enabled": True,
                "alpha": 0.001,
                "min_sample": 100,
                "expected": {name: 1 for name in ARM_SHARES[arms]},
            },
        },
    }


def experiment_dbt_vars(arms: int) -> dict[str, Any]:
    """The vars `recsys-eval run --mode experiment` passes, from the CLI's own function."""
    from recsys_eval.commands.run import dbt_vars
    from recsys_eval.config import RunConfig, apply_defaults

    cfg = RunConfig(
        mode="experiment",
        dataset={},
        eval=apply_defaults(experiment_config(arms)),
        dataset_file=Path("bench.dataset.yaml"),
        eval_file=Path("bench.eval.yaml"),
    )
    return dbt_vars(cfg)


def cli_select(experiment_only: bool) -> tuple[str, ...]:
    """The selection of `recsys-eval run --mode experiment` (commands/run.py build_marts)."""
    from recsys_eval.experiment_report import EXPERIMENT_MARTS

    marts = tuple(f"+{name}" for name in EXPERIMENT_MARTS)
    return marts if experiment_only else DQ_SELECT + marts


# ---------------------------------------------------------------------------------------------
# The hand-written query

HAND_SQL = """
with
first_exposures as (
    -- per request_id its first exposure in file order (load_seq, line_no)
    select
        coalesce(request_id, '') as request_id,
        arg_min(
            {{
                -- the models' segment key: the value with '\\', '|' and '=' escaped
                'segment_key': '{slice_key}=' || replace(replace(replace(
                    coalesce(context['{slice_key}'], ''), '\\', '\\\\'), '|', '\\|'), '=', '\\='),
                'is_empty': coalesce(len(items), 0) = 0,
                'latency_ms': latency_ms,
                'is_error': coalesce(error, false)
            }},
            (load_seq, line_no)
        ) as x
    from raw.exposures
    group by 1
),
latest_assignments as (
    -- per request_id the last valid assignment row of the experiment (case-insensitive id)
    select request_id, arg_max(variant, (load_seq, line_no)) as variant
    from raw.assignments
    where request_id <> '' and variant <> '' and lower(experiment_id) = '{experiment_id}'
    group by request_id
),
outcome_tallies as (
    -- per request_id event counts (not indicators); revenue from conversion rows only
    select
        coalesce(request_id, '') as request_id,
        count(*) filter (where lower(event_type) = 'click') as clicks,
        count(*) filter (where lower(event_type) = 'conversion') as conversions,
        coalesce(sum(value) filter (where lower(event_type) = 'conversion'), 0) as revenue
    from raw.outcomes
    group by 1
),
cases as (
    select
        a.variant,
        e.x.segment_key as segment_key,
        e.x.is_empty as is_empty,
        e.x.latency_ms as latency_ms,
        e.x.is_error as is_error,
        coalesce(o.clicks, 0) as clicks,
        coalesce(o.conversions, 0) as conversions,
        coalesce(o.revenue, 0) as revenue
    from first_exposures as e
    inner join latest_assignments as a on e.request_id = a.request_id
    left join outcome_tallies as o on e.request_id = o.request_id
),
groups as (
    select
        grouping(segment_key) = 1 as is_global,
        coalesce(segment_key, '__all__') as segment_key,
        variant,
        count(*) as exposures,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(revenue)::double as revenue,
        count(*) filter (where is_error) as errors,
        count(*) filter (where is_empty) as empties
    from cases
    group by grouping sets ((variant), (variant, segment_key))
),
latency_counts as (
    -- the floor-rank p95 from per-value counts: exact for any data, no per-row sort
    select
        grouping(segment_key) = 1 as is_global,
        coalesce(segment_key, '__all__') as segment_key,
        variant,
        latency_ms,
        count(*) as c
    from cases
    where latency_ms is not null
    group by grouping sets ((variant, latency_ms), (variant, segment_key, latency_ms))
),
latency_running as (
    select
        *,
        sum(c) over (
            partition by is_global, segment_key, variant order by latency_ms
            rows between unbounded preceding and current row
        ) as running,
        sum(c) over (partition by is_global, segment_key, variant) as n
    from latency_counts
),
latency_p95 as (
    select
        is_global,
        segment_key,
        variant,
        min(latency_ms) filter (
            where running >= floor({p95}e0 * (n - 1)::double)::bigint + 1
        ) as latency_p95_ms
    from latency_running
    group by all
),
with_control as (
    select
        g.*,
        coalesce(l.latency_p95_ms, 0) as latency_p95_ms,
        max(g.exposures) filter (where g.variant = '{control}') over population as n0,
        max(g.clicks) filter (where g.variant = '{control}') over population as clicks0,
        max(g.conversions) filter (where g.variant = '{control}') over population as conversions0
    from groups as g
    left join latency_p95 as l
        on g.is_global = l.is_global and g.segment_key = l.segment_key and g.variant = l.variant
    window population as (partition by g.is_global, g.segment_key)
),
variance as (
    select
        *,
        (clicks + clicks0)::double / (exposures + n0) as pooled_ctr,
        (conversions + conversions0)::double / (exposures + n0) as pooled_cvr,
        1.0e0 / exposures + 1.0e0 / n0 as inv_n
    from with_control
)
select
    'variant' as kind,
    case when is_global then 'global' else 'segment' end as scope,
    segment_key,
    variant,
    exposures,
    clicks,
    conversions,
    revenue,
    clicks / exposures as ctr,
    conversions / exposures as conversion_rate,
    revenue / exposures as revenue_per_request,
    errors / exposures as error_rate,
    empties / exposures as empty_rate,
    latency_p95_ms,
    pooled_ctr * (1 - pooled_ctr) * inv_n as var_ctr,
    pooled_cvr * (1 - pooled_cvr) * inv_n as var_cvr,
    case when variant <> '{control}' and pooled_ctr * (1 - pooled_ctr) * inv_n > 0 then
        (clicks / exposures - clicks0 / n0) / sqrt(pooled_ctr * (1 - pooled_ctr) * inv_n)
    end as z_ctr,
    case when variant <> '{control}' and pooled_cvr * (1 - pooled_cvr) * inv_n > 0 then
        (conversions / exposures - conversions0 / n0) / sqrt(pooled_cvr * (1 - pooled_cvr) * inv_n)
    end as z_cvr,
    null::bigint as srm_rows
from variance
union all
-- SRM: assignment rows (duplicates every time) with a request_id and variant, in the experiment
select
    'srm', 'global', '__all__', variant,
    null, null, null, null, null, null, null, null, null, null, null, null, null, null,
    count(*)
from raw.assignments
where request_id <> '' and variant <> '' and lower(experiment_id) = '{experiment_id}'
group by variant
order by kind, scope, segment_key, variant
"""


def hand_sql() -> str:
    return HAND_SQL.format(
        slice_key=SLICE_KEY, experiment_id=EXPERIMENT_ID.lower(), control=CONTROL, p95=P95
    )


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


def run_hand(db: Path, run_dir: Path, threads: int, memory_limit: str | None) -> HandRun:
    sql_file = run_dir / "hand.sql"
    sql_file.write_text(hand_sql())
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
# Statistics the hand-written side computes in Python


def two_sided_p(z: float | None, variance: float | None, n1: int, n0: int) -> float | None:
    """The reference's z-test p-value 2 (1 - Phi(|z|)) = erfc(|z| / sqrt 2) with its guards."""
    if n1 == 0 or n0 == 0 or variance == 0:
        return 1.0
    if variance is None or variance < 0 or z is None:
        return None
    return math.erfc(abs(z) / math.sqrt(2.0))


def chi2_sf(x: float, df: int) -> float:
    """Chi-square survival function for an integer df >= 1, closed form:
    Q(x; 1) = erfc(sqrt(x / 2)), Q(x; 2) = exp(-x / 2), Q(x; k + 2) = Q(x; k) + (x/2)^(k/2)
    exp(-x/2) / Gamma(k/2 + 1)."""
    if x <= 0:
        return 1.0
    half = x / 2.0
    if df % 2:
        q, k = math.erfc(math.sqrt(half)), 1
    else:
        q, k = math.exp(-half), 2
    while k < df:
        q += math.exp((k / 2.0) * math.log(half) - half - math.lgamma(k / 2.0 + 1.0))
        k += 2
    return min(1.0, q)


def srm_stats(observed: dict[str, int], expected: dict[str, float]) -> tuple[float, int, float]:
    """(chi-square, df, p) of reference §5.9: observed variants with a positive expected count."""
    total = sum(observed.values())
    weight_total = sum(expected.values())
    chi, contributing = 0.0, 0
    for variant, obs in observed.items():
        exp = expected.get(variant, 0.0) / weight_total * total
        if obs > 0 and exp > 0:
            chi += (obs - exp) ** 2 / exp
            contributing += 1
    unexpected = any(v not in expected for v in observed)
    if unexpected or contributing < 2:
        return chi, contributing - 1, 1.0
    return chi, contributing - 1, chi2_sf(chi, contributing - 1)


# ---------------------------------------------------------------------------------------------
# Comparison


def read_marts(db: Path) -> dict[str, list[dict[str, Any]]]:
    con = duckdb.connect(str(db), read_only=True)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        for name in (
            "fct_experiment_variant_metrics",
            "fct_experiment_significance",
            "fct_experiment_guardrails",
            "fct_experiment_srm",
        ):
            found = con.execute(
                "select table_schema from information_schema.tables where table_name = ? "
                "order by table_schema",
                [name],
            ).fetchall()
            if not found:
                raise BenchError(f"dbt did not build {name}")
            cur = con.execute(f'select * from "{found[0][0]}".{name}')
            cols = [d[0] for d in cur.description]
            out[name] = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    return out


class Comparer:
    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.problems: list[str] = []
        self.checked = 0

    def exact(self, name: str, dbt: Any, hand: Any) -> None:
        self.checked += 1
        if dbt != hand:
            self.problems.append(f"{name}: dbt {dbt!r} != hand {hand!r}")

    def close(self, name: str, dbt: float | None, hand: float | None) -> None:
        self.checked += 1
        if dbt is None or hand is None:
            if dbt is not hand:
                self.problems.append(f"{name}: dbt {dbt!r} != hand {hand!r}")
            return
        d, h = float(dbt), float(hand)
        scale = max(1.0, abs(d), abs(h))
        if not (math.isfinite(d) and math.isfinite(h)) or abs(d - h) > self.tolerance * scale:
            self.problems.append(f"{name}: dbt {d!r} != hand {h!r} (diff {abs(d - h):.3g})")

    def keys(self, what: str, dbt: set[Any], hand: set[Any]) -> None:
        for key in sorted(dbt - hand, key=repr):
            self.problems.append(f"{what} {key}: only in the marts")
        for key in sorted(hand - dbt, key=repr):
            self.problems.append(f"{what} {key}: only in the hand-written result")


def compare(
    marts: dict[str, list[dict[str, Any]]],
    hand_rows: list[dict[str, Any]],
    arms: int,
    tolerance: float,
) -> Comparer:
    cmp = Comparer(tolerance)
    hand = {
        (r["scope"], r["segment_key"], r["variant"]): r for r in hand_rows if r["kind"] == "variant"
    }

    # variant metrics, global and per tenant
    metrics = {
        (r["scope"], r["segment_key"], r["variant"]): r
        for r in marts["fct_experiment_variant_metrics"]
    }
    cmp.keys("variant_metrics", set(metrics), set(hand))
    for key in sorted(set(metrics) & set(hand)):
        m, h, name = metrics[key], hand[key], "/".join(key)
        for col in ("exposures", "clicks", "conversions"):
            cmp.exact(f"variant_metrics {name} {col}", int(m[col]), int(h[col]))
        for col in ("revenue", "ctr", "conversion_rate", "revenue_per_request"):
            cmp.close(f"variant_metrics {name} {col}", m[col], h[col])

    # significance: z and p of ctr and conversion_rate against control, every population
    sig = {
        (r["scope"], r["segment_key"], r["variant"], r["metric"]): r
        for r in marts["fct_experiment_significance"]
    }
    expected_sig = {}
    for (scope, segment, variant), h in hand.items():
        if variant == CONTROL:
            continue
        control = hand.get((scope, segment, CONTROL))
        if control is None:
            continue
        for metric, z, var in (
            ("ctr", "z_ctr", "var_ctr"),
            ("conversion_rate", "z_cvr", "var_cvr"),
        ):
            p = two_sided_p(h[z], h[var], int(h["exposures"]), int(control["exposures"]))
            expected_sig[(scope, segment, variant, metric)] = (h[z], p)
    cmp.keys("significance", set(sig), set(expected_sig))
    for key in sorted(set(sig) & set(expected_sig)):
        s, (z, p), name = sig[key], expected_sig[key], "/".join(key)
        cmp.exact(f"significance {name} control", s["control_variant"], CONTROL)
        cmp.close(f"significance {name} z", s["z_score"], z)
        cmp.close(f"significance {name} p", s["p_value"], p)

    # guardrails: global, per variant
    guard = {r["variant"]: r for r in marts["fct_experiment_guardrails"]}
    hand_global = {k[2]: r for k, r in hand.items() if k[0] == "global"}
    cmp.keys("guardrails", set(guard), set(hand_global))
    for variant in sorted(set(guard) & set(hand_global)):
        g, h = guard[variant], hand_global[variant]
        for col in ("latency_p95_ms", "error_rate", "empty_rate"):
            cmp.close(f"guardrails {variant} {col}", g[col], h[col])

    # SRM: observed rows per variant, chi-square, df and p (global)
    srm = {r["variant"]: r for r in marts["fct_experiment_srm"] if r["scope"] == "global"}
    observed = {r["variant"]: int(r["srm_rows"]) for r in hand_rows if r["kind"] == "srm"}
    expected = {name: 1.0 for name in ARM_SHARES[arms]}
    cmp.keys("srm", set(srm), set(observed) | set(expected))
    chi, df, p = srm_stats(observed, expected)
    for variant in sorted(set(srm) & set(observed)):
        r = srm[variant]
        cmp.exact(f"srm {variant} observed_rows", int(r["observed_rows"]), observed[variant])
        cmp.close(f"srm {variant} chi_square", r["chi_square"], chi)
        cmp.exact(f"srm {variant} degrees_of_freedom", int(r["degrees_of_freedom"]), df)
        cmp.close(f"srm {variant} p_value", r["p_value"], p)
    return cmp


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class CaseResult:
    n: int
    arms: int
    data: DataStats
    dbt: DbtRun
    hand: HandRun
    comparer: Comparer
    srm: tuple[float, int, float]
    srm_shares: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.dbt.measured.seconds / max(self.hand.measured.seconds, 1e-9)


def print_case(res: CaseResult, args: argparse.Namespace) -> None:
    d, m, h = res.data, res.dbt.measured, res.hand.measured
    print(
        f"\n== {res.n:,} exposures, {res.arms} arms: {d.requests:,} requests, {d.users:,} users, "
        f"{d.outcome_rows:,} outcomes, {d.assignment_rows:,} assignment rows "
        f"({d.assigned_requests:,} requests assigned); generated in {d.seconds:.1f} s, database "
        f"{d.db_bytes / 1e6:,.0f} MB"
    )
    chi, df, p = res.srm
    shares = ", ".join(f"{k} {v:.4%}" for k, v in res.srm_shares.items())
    print(f"planted SRM: observed shares {shares}; chi-square {chi:.1f}, df {df}, p {p:.3g}")
    print(f"{'':<14}{'wall s':>9}{'cpu s':>9}{'inner s':>9}{'peak RSS':>11}")
    for label, ms, inner in (
        ("dbt run", m, res.dbt.elapsed),
        ("hand-written", h, res.hand.query_seconds),
    ):
        print(
            f"{label:<14}{ms.seconds:>9.2f}{ms.cpu_seconds:>9.2f}{inner:>9.2f}"
            f"{fmt_gb(ms.peak_rss_bytes):>11}"
        )
    print(
        "  wall: child process spawn to exit; cpu: its user + system time; inner: dbt's own "
        "elapsed_time (no start-up, no parse) / the statement alone"
    )
    print(f"  dbt: {parse_note(res.dbt)}")
    print(
        f"ratio dbt/hand: wall {res.ratio:.2f}, "
        f"cpu {m.cpu_seconds / max(h.cpu_seconds, 1e-9):.2f}, "
        f"inner {res.dbt.elapsed / max(res.hand.query_seconds, 1e-9):.2f}; target wall ratio <= "
        f"{TARGET_RATIO:g}: {'PASS' if res.ratio <= TARGET_RATIO else 'FAIL'}"
    )
    total = sum(s for _, s in res.dbt.models) or 1.0
    slow = ", ".join(
        f"{name} {secs:.2f} ({secs / total:.0%})"
        for name, secs in res.dbt.models[: args.top_models]
    )
    print(f"slowest models (execution_time s, share of the models' sum {total:.2f} s): {slow}")
    problems = res.comparer.problems
    if problems:
        print(f"NUMBERS DIFFER ({len(problems)} of {res.comparer.checked} checks):")
        for line in problems[:40]:
            print(f"  {line}")
    else:
        print(
            f"marts agree: {res.comparer.checked} checks (variant metrics global + per tenant, "
            f"z and p, guardrails, SRM) within {args.tolerance:g}"
        )


def print_summary(results: list[CaseResult]) -> None:
    print(
        f"\n{'exposures':>12}{'arms':>5}{'rows':>12}{'dbt s':>9}{'hand s':>9}{'ratio':>7}"
        f"{'dbt RSS':>10}{'hand RSS':>10}  target: ratio <= {TARGET_RATIO:g}"
    )
    for r in results:
        m, h = r.dbt.measured, r.hand.measured
        verdict = "PASS" if r.ratio <= TARGET_RATIO else "FAIL"
        print(
            f"{r.n:>12,}{r.arms:>5}{r.data.exposure_rows:>12,}{m.seconds:>9.2f}{h.seconds:>9.2f}"
            f"{r.ratio:>7.2f}{m.peak_rss_bytes / GB:>9.2f}G{h.peak_rss_bytes / GB:>9.2f}G  "
            f"{verdict}{'  NUMBERS DIFFER' if r.comparer.problems else ''}"
        )


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--exposures", type=int, nargs="+", default=[1_000_000], metavar="N")
    parser.add_argument("--arms", type=int, nargs="+", default=[2, 3], choices=sorted(ARM_SHARES))
    parser.add_argument("--items", type=int, default=5, help="list length")
    parser.add_argument("--click-rate", type=float, default=0.04, help="per shown entry")
    parser.add_argument("--catalog", type=int, default=100_000, help="distinct item ids")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (all children)")
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 6GB (default: DuckDB's)")
    parser.add_argument(
        "--select-experiment-only",
        action="store_true",
        help="build only +EXPERIMENT_MARTS (default: the CLI's experiment-mode selection, which "
        "adds the data quality marts)",
    )
    parser.add_argument(
        "--project-dir", type=Path, default=PROJECT, help="dbt project to run (a copy, a branch)"
    )
    parser.add_argument("--workdir", type=Path, help="default: a new temp dir under /tmp")
    parser.add_argument("--keep", action="store_true", help="keep the workdir and databases")
    parser.add_argument("--tolerance", type=float, default=1e-9, help="max |dbt - hand|")
    parser.add_argument("--max-ratio", type=float, help="exit 3 when dbt/hand wall exceeds it")
    parser.add_argument("--top-models", type=int, default=6, help="slowest models to list")
    parser.add_argument(
        "--cold-parse",
        action="store_true",
        help="time dbt's full project parse too (a first run); by default the project is parsed "
        "once untimed, as a repeated run on the same database finds it in the CLI's parse cache",
    )
    args = parser.parse_args(argv)
    if any(n <= 0 for n in args.exposures) or args.items <= 0:
        parser.error("--exposures and --items must be > 0")
    if not 0 <= args.click_rate <= 0.5 or args.catalog <= 0 or args.threads <= 0:
        parser.error("--click-rate must be in [0, 0.5], --catalog and --threads > 0")
    if args.memory_limit and not re.match(r"^\d+(\.\d+)?\s*[KMGT]i?B$", args.memory_limit, re.I):
        parser.error("--memory-limit must look like 6GB or 512MiB")
    return args


def bench_case(
    n: int,
    arms: int,
    base_db: Path,
    base: DataStats,
    args: argparse.Namespace,
    size_dir: Path,
    profiles: Path,
) -> CaseResult:
    run_dir = size_dir / f"arms{arms}"
    run_dir.mkdir(parents=True, exist_ok=True)
    db = run_dir / "bench.duckdb"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(base_db, db)
    print(f"-- {n:,} exposures, {arms} arms: assignments into {db}", flush=True)
    data = add_assignments(db, args, n, arms, base)
    select = cli_select(args.select_experiment_only)
    print(f"-- dbt run --select {' '.join(select)}", flush=True)
    dbt = run_dbt(
        db,
        run_dir,
        args.project_dir,
        profiles,
        experiment_dbt_vars(arms),
        select,
        cold_parse=args.cold_parse,
    )
    print("-- hand-written query", flush=True)
    hand = run_hand(db, run_dir, args.threads, args.memory_limit)
    marts = read_marts(db)
    comparer = compare(marts, hand.rows, arms, args.tolerance)
    observed = {r["variant"]: int(r["srm_rows"]) for r in hand.rows if r["kind"] == "srm"}
    total = sum(observed.values()) or 1
    srm = srm_stats(observed, {name: 1.0 for name in ARM_SHARES[arms]})
    if not args.keep:
        for path in (db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)
    res = CaseResult(
        n, arms, data, dbt, hand, comparer, srm, {k: v / total for k, v in sorted(observed.items())}
    )
    print_case(res, args)
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-experiment-", dir="/tmp"))
    workdir = workdir.resolve()
    created = args.workdir is None or not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[CaseResult] = []
    try:
        profiles = write_profile(workdir, args.project_dir, args.threads, args.memory_limit)
        print(
            f"workdir {workdir}; {args.items} items per list, click rate {args.click_rate}, "
            f"experiment {EXPERIMENT_ID}, control {CONTROL}, slice key {SLICE_KEY}, seed "
            f"{args.seed}, DuckDB threads {args.threads}, memory_limit "
            f"{args.memory_limit or 'DuckDB default'}"
        )
        print(f"dbt vars (2 arms): {json.dumps(experiment_dbt_vars(2), sort_keys=True)}")
        for n in args.exposures:
            size_dir = workdir / f"n{n}"
            size_dir.mkdir(parents=True, exist_ok=True)
            base_db = size_dir / "base.duckdb"
            base_db.unlink(missing_ok=True)
            print(f"\n-- {n:,} exposures: generating {base_db}", flush=True)
            base = generate_base(base_db, args, n)
            for arms in args.arms:
                results.append(bench_case(n, arms, base_db, base, args, size_dir, profiles))
            if not args.keep:
                base_db.unlink(missing_ok=True)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        elif created:
            shutil.rmtree(workdir, ignore_errors=True)
    print_summary(results)
    if any(r.comparer.problems for r in results):
        print("FAIL: the experiment marts and the hand-written query disagree", file=sys.stderr)
        return 1
    if args.max_ratio is not None and any(r.ratio > args.max_ratio for r in results):
        print(f"FAIL: dbt/hand ratio above --max-ratio {args.max_ratio}", file=sys.stderr)
        return EXIT_LIMIT
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == HAND_CHILD:
        sys.exit(hand_child_main(sys.argv[2:]))
    sys.exit(main())
