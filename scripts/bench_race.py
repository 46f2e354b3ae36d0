#!/usr/bin/env python3
"""The whole CLI, side by side: ours (cold and warm), the DuckDB limit and the Go reference.

For each --exposures size N and each --modes mode (offline, experiment, ope, interleaving) this
script writes deterministic JSONL to disk, then runs back to back, on the same files:

1. ours, cold: `recsys-eval run --mode M --dataset D.yaml --config C.yaml --output R.json
   --database <mode>-<N>.duckdb` as a user would (validate, load, dbt build, report), with
   RECSYS_EVAL_CACHE_DIR set to a folder that is new for this invocation (so the dbt build runs);
2. ours, warm: the same command again into a new database with the same file stem (so the plan
   key is the same and the run replays the compiled plan without dbt; README "Plan replay"), on
   the same files: validation and load are paid again, the dbt start-up is not. The simulated
   interleaving compiles SQL that depends on the data and always goes through dbt;
3. the DuckDB limit: one child process that reads the same JSONL with DuckDB's `read_json`
   (explicit types, no validation, no quarantine) into tables in a new database file, in the
   loader's column names (file order kept as rowid: line_no), and then runs the existing
   hand-written query of the mode's benchmark over them (bench_offline.HAND_SQL,
   bench_experiment.HAND_SQL, bench_ope.HAND_IPS_SQL with the reference's reward rule;
   interleaving: this file's credit query on the rankers' lists). Its time is the load plus
   the query: what reading the files and computing the numbers costs DuckDB alone;
4. the reference: `../shared/reference/go/recsys-eval run ...` with the same two YAML files
   (skipped, with a note, when the binary is absent).

Every child is measured the same way: wall time from spawn to exit, CPU time (user + system of
the child and its waited-for descendants, from os.wait4) and peak RSS (ru_maxrss from os.wait4:
the largest process of the tree; our loader's two workers and dbt are children of the CLI, the
reference is one process that keeps every record in memory). The children are started by a
small runner process (Runner), so that their ru_maxrss does not include this process's memory.

Agreement (any difference beyond --tolerance, relative, fails the benchmark with exit 1; every
compared value is printed):
- ours vs the reference, where the definitions are the same: offline metrics (reference
  dialect) globally and per segment; experiment variant metrics (global and per segment, CUPED
  adjusted too), p-values and adjusted p-values, guardrails, SRM and CUPED thetas; OPE
  estimators (IPS, SNIPS, their variances), weight stats and diagnostics;
  interleaving wins, ties, requests and p-value (the rankers' lists are disjoint, so team_draft's
  teams do not depend on the coin, which differs on purpose: README "Deliberate differences");
- ours vs the DuckDB limit: offline metrics (global and segments), experiment variant counts
  and rates, IPS and its sample count, interleaving wins.

The data: offline and OPE share bench_offline's generator (10 items with logging and target
propensities, repeated request ids, reversed and tied ranks, 3 % clicks, conversions, orphans),
experiment uses bench_experiment's (2 arms, planted SRM and lift, CUPED covariate; exported
valid: lower-case event types, no null values, no empty variants), interleaving has ranker A
and B lists of 5 distinct items each per request (disjoint) and clicks with a lift for A.

    .venv/bin/python scripts/bench_race.py --exposures 10000 100000 1000000 --markdown race.md
    .venv/bin/python scripts/bench_race.py --exposures 10000     # the smoke run of scripts/test

Exit codes: 0 ok (targets are reported, not enforced); 1 a value disagrees or a run failed;
2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import GB, BenchError, Measured, session_settings, tail

PROJECT = Path(__file__).resolve().parents[1]
REFERENCE = PROJECT.parent / "shared" / "reference" / "go" / "recsys-eval"
MODES = ("offline", "experiment", "ope", "interleaving")
LIMIT_CHILD = "--run-limit-child"  # internal: how the parent starts the DuckDB limit
OFFLINE_K = 10
OFFLINE_SLICE_KEYS = ["tenant", "surface"]
# bench_offline's families without mrr, which the reference does not know ("unknown metric")
OFFLINE_FAMILIES = ("precision", "recall", "map", "ndcg", "hitrate", "coverage", "novelty",
                    "diversity")  # fmt: skip
INTERLEAVING_ITEMS = 5  # per ranker; disjoint lists of 5 + 5 = max_results 10
# The targets (reported, not enforced).
TARGET_TINY_S = 3.0
TARGET_10K_S = 5.0
TARGET_10M_RSS_GB = 8.0

# ---------------------------------------------------------------------------------------------
# The measured children are started by a small runner process

# Why: ru_maxrss of a child also counts the memory of the process that started it (on exec,
# Linux records the old address space's high-water mark, and subprocess starts children with
# vfork, which shares the parent's), so children of this benchmark, which generates data with
# DuckDB in-process, would all show at least its peak. The runner is a bare Python started
# first; every measured child is its child (wall time, os.wait4's CPU time and ru_maxrss).
# With a "max_rss_kb" (the reference at 10M: its in-memory design can exhaust the machine), the
# child's resident set (/proc/PID/status VmRSS) is read every 0.2 s and the child is killed with
# SIGKILL once it is above the cap; the runner then reports "killed".
RUNNER_CODE = """
import json, os, signal, subprocess, sys, time
def vmrss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for row in f:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1])
    except OSError:
        pass
    return 0
for line in sys.stdin:
    job = json.loads(line)
    cap = job.get("max_rss_kb") or 0
    killed = False
    with open(job["log"], "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(job["cmd"], env=job["env"], stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if cap else 0)
            if pid:
                break
            if not killed and vmrss_kb(proc.pid) > cap:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
                      "maxrss_kb": usage.ru_maxrss, "killed": killed,
                      "returncode": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Runner:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", RUNNER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.killed = False  # the last child was killed above its RSS cap

    def run(
        self, cmd: list[str], env: dict[str, str], log: Path, max_rss_gb: float = 0
    ) -> Measured:
        """Run one child to its end; with max_rss_gb > 0, kill it above that RSS (self.killed)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = {"cmd": cmd, "env": env, "log": str(log), "max_rss_kb": int(max_rss_gb * GB / 1024)}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError("the runner process died")
        out = json.loads(line)
        self.killed = bool(out["killed"])
        return Measured(out["seconds"], out["cpu"], out["maxrss_kb"] * 1024, out["returncode"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


RUNNER: Runner | None = None


def run_measured(cmd: list[str], env: dict[str, str], log: Path, max_rss_gb: float = 0) -> Measured:
    assert RUNNER is not None
    return RUNNER.run(cmd, env, log, max_rss_gb)


# ---------------------------------------------------------------------------------------------
# Data: JSONL on disk

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
        coalesce(latency_ms, 0.0) as latency_ms,  -- exposure.v1 has no null: 0 when missing
        coalesce(error, false) as error
    from raw.exposures
    order by load_seq, line_no
) to '{path}' (format json)
"""
OUTCOMES_JSONL = """
copy (
    select
        request_id, user_id, item_id,
        lower(event_type) as event_type,  -- outcome.v1's enum is lower case
        coalesce(value, 0.0) as value,  -- outcome.v1 has no null value
        strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') as ts
    from raw.outcomes
    order by load_seq, line_no
) to '{path}' (format json)
"""
ASSIGNMENTS_JSONL = """
copy (
    select
        experiment_id, variant, request_id, user_id,
        strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') as ts,
        coalesce(context, map()) as context
    from raw.assignments
    where variant <> ''  -- assignment.v1: a variant is never empty
    order by load_seq, line_no
) to '{path}' (format json)
"""
# Interleaving: ranker A's and B's lists of the same requests (disjoint item ids, distinct within
# a list), clicks on shown items with a lift for A (a click at most once per item).
RANKER_JSONL = """
copy (
    select
        'r' || i as request_id,
        'u' || (hash(i, {seed}) % {users}) as user_id,
        strftime(timestamp '2025-01-01' + to_seconds(i % 86400), '%Y-%m-%dT%H:%M:%SZ') as ts,
        list_transform(
            range({items}), lambda k: '{team}' || ((hash(i, '{team}', {seed}) + k * 7919) % 50000)
        ) as items,
        map(['tenant'], ['t' || (i % 3)]) as context
    from range({n}) as t (i)
    order by i
) to '{path}' (format json)
"""
INTERLEAVING_OUTCOMES_JSONL = """
copy (
    with shown as (
        select i, team, k,
            team || ((hash(i, team, {seed}) + k * 7919) % 50000) as item_id,
            (hash(i, k, team, 'click', {seed}) % 1000003)::double / 1000003 as u
        from range({n}) as t (i), (values ('a'), ('b')) as teams (team), range({items}) as r (k)
    )
    select
        'r' || i as request_id,
        'u' || (hash(i, {seed}) % {users}) as user_id,
        item_id,
        'click' as event_type,
        1.0 as value,
        strftime(timestamp '2025-01-01' + to_seconds(i % 86400 + 5), '%Y-%m-%dT%H:%M:%SZ') as ts
    from shown
    where u < {click_rate} * case when team = 'a' then 1 + {lift} else 1 end
    order by i, team, k
) to '{path}' (format json)
"""


@dataclass
class Inputs:
    files: dict[str, Path]  # role -> JSONL
    dataset: Path
    config: Path  # the reference's
    ours_config: Path  # ours: the same, plus ope.reward_model: reference in OPE mode
    lines: int
    seconds: float


def export(db: Path, threads: int, jobs: list[tuple[str, Path]]) -> None:
    con = duckdb.connect(str(db), read_only=True)
    try:
        session_settings(con, threads, None)
        for sql, path in jobs:
            con.execute(sql.format(path=path))
    finally:
        con.close()


def line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def source(path: Path) -> dict[str, str]:
    return {"type": "jsonl", "path": str(path)}


def mode_config(mode: str, ours: bool = False) -> dict[str, Any]:
    """The eval config of each mode (the reference's format; both CLIs read it). In OPE mode
    ours adds `reward_model: reference` (the reference's reward rule: the last outcome of an item
    decides; our default fixes it on purpose, README "Off-policy evaluation"), so that IPS and
    SNIPS have the same definition on both sides; the reference refuses the unknown key."""
    if mode == "offline":
        return {
            "mode": "offline",
            "offline": {
                "slice_keys": OFFLINE_SLICE_KEYS,
                "metrics": [{"name": f, "k": OFFLINE_K} for f in OFFLINE_FAMILIES],
            },
        }
    if mode == "experiment":
        from bench_experiment import experiment_config

        return experiment_config(2)
    if mode == "ope":
        extra = {"reward_model": "reference"} if ours else {}
        return {"mode": "ope", "ope": {"enable_snips": True, **extra}}
    return {
        "mode": "interleaving",
        "interleaving": {"algorithm": "team_draft", "seed": 42, "max_results": 10},
    }


def prepare(mode: str, n: int, args: argparse.Namespace, size_dir: Path) -> Inputs:
    """The JSONL files and the two YAML files of `mode` at `n` (offline and OPE share data)."""
    t0 = time.perf_counter()
    data_dir = size_dir / ("offline-data" if mode in ("offline", "ope") else f"{mode}-data")
    data_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path]
    if mode in ("offline", "ope"):
        files = {"exposures": data_dir / "exposures.jsonl", "outcomes": data_dir / "outcomes.jsonl"}
        if not all(p.exists() for p in files.values()):
            from bench_offline import generate
            from bench_offline import parse_args as offline_args

            db = data_dir / "generated.duckdb"
            db.unlink(missing_ok=True)
            gen = offline_args(["--threads", str(args.threads), "--seed", str(args.seed)])
            generate(db, gen, n)
            export(db, args.threads, [(EXPOSURES_JSONL, files["exposures"]),
                                      (OUTCOMES_JSONL, files["outcomes"])])  # fmt: skip
            db.unlink()
        dataset = {k: source(p) for k, p in files.items()}
    elif mode == "experiment":
        from bench_experiment import add_assignments, generate_base
        from bench_experiment import parse_args as experiment_args

        files = {
            "exposures": data_dir / "exposures.jsonl",
            "outcomes": data_dir / "outcomes.jsonl",
            "assignments": data_dir / "assignments.jsonl",
        }
        db = data_dir / "generated.duckdb"
        db.unlink(missing_ok=True)
        gen = experiment_args(["--threads", str(args.threads), "--seed", str(args.seed)])
        base = generate_base(db, gen, n)
        add_assignments(db, gen, n, 2, base)
        export(db, args.threads, [(EXPOSURES_JSONL, files["exposures"]),
                                  (OUTCOMES_JSONL, files["outcomes"]),
                                  (ASSIGNMENTS_JSONL, files["assignments"])])  # fmt: skip
        db.unlink()
        dataset = {k: source(p) for k, p in files.items()}
    else:
        files = {
            "ranker_a": data_dir / "ranker_a.jsonl",
            "ranker_b": data_dir / "ranker_b.jsonl",
            "outcomes": data_dir / "outcomes.jsonl",
        }
        fmt = {"n": n, "seed": args.seed, "users": max(1, n // 4), "items": INTERLEAVING_ITEMS}
        con = duckdb.connect()
        try:
            session_settings(con, args.threads, None)
            for team in ("a", "b"):
                path = files[f"ranker_{team}"]
                con.execute(RANKER_JSONL.format(**fmt, team=team, path=path))
            con.execute(
                INTERLEAVING_OUTCOMES_JSONL.format(
                    **fmt, click_rate=args.click_rate, lift=0.2, path=files["outcomes"]
                )
            )
        finally:
            con.close()
        dataset = {"interleaving": {k: source(p) for k, p in files.items()}}
    run_dir = size_dir / mode
    run_dir.mkdir(parents=True, exist_ok=True)
    return Inputs(
        files=files,
        dataset=write_yaml(run_dir / "dataset.yaml", dataset),
        config=write_yaml(run_dir / "config.yaml", mode_config(mode)),
        ours_config=write_yaml(run_dir / "config.ours.yaml", mode_config(mode, ours=True)),
        lines=sum(line_count(p) for p in files.values()),
        seconds=time.perf_counter() - t0,
    )


TINY = PROJECT / "examples" / "tiny"  # the reference's testdata/datasets/tiny
REFERENCE_CONFIGS = REFERENCE.parents[1] / "configs"
# The tiny race: the bundled dataset with the reference's own configs (offline.ci.yaml is the
# golden offline report's; the experiment's is ours, the golden experiment's, in the same format).
TINY_CONFIGS = {
    "offline": REFERENCE_CONFIGS / "offline.ci.yaml",
    "experiment": PROJECT / "configs" / "experiment.golden.yaml",
    "ope": REFERENCE_CONFIGS / "ope.default.yaml",
    "interleaving": REFERENCE_CONFIGS / "interleaving.default.yaml",
}


def prepare_tiny(mode: str, workdir: Path) -> Inputs:
    """The bundled tiny dataset (absolute paths) and the mode's reference config."""
    import yaml

    run_dir = workdir / "tiny" / mode
    run_dir.mkdir(parents=True, exist_ok=True)
    if mode == "interleaving":
        names = {"ranker_a": "ranker_a", "ranker_b": "ranker_b",
                 "outcomes": "outcomes_interleaving"}  # fmt: skip
    else:
        names = {role: role for role in ("exposures", "outcomes", "assignments")}
    files = {role: TINY / f"{name}.jsonl" for role, name in names.items()}
    sources = {role: source(path) for role, path in files.items()}
    dataset = {"interleaving": sources} if mode == "interleaving" else sources
    config = yaml.safe_load(TINY_CONFIGS[mode].read_text())
    ours = json.loads(json.dumps(config))
    if mode == "ope":
        ours["ope"]["reward_model"] = "reference"
    return Inputs(
        files=files,
        dataset=write_yaml(run_dir / "dataset.yaml", dataset),
        config=write_yaml(run_dir / "config.yaml", config),
        ours_config=write_yaml(run_dir / "config.ours.yaml", ours),
        lines=sum(line_count(p) for p in files.values()),
        seconds=0.0,
    )


# ---------------------------------------------------------------------------------------------
# The DuckDB limit (a child process)

TS = "TIMESTAMP"
ITEM = "STRUCT(item_id VARCHAR, rank BIGINT, propensity DOUBLE, logging_propensity DOUBLE, "
ITEM += "target_propensity DOUBLE)"
COLUMNS = {
    "exposures": {
        "request_id": "VARCHAR", "user_id": "VARCHAR", "ts": TS, "items": f"{ITEM}[]",
        "context": "MAP(VARCHAR, VARCHAR)", "latency_ms": "DOUBLE", "error": "BOOLEAN",
    },
    "outcomes": {
        "request_id": "VARCHAR", "user_id": "VARCHAR", "item_id": "VARCHAR",
        "event_type": "VARCHAR", "value": "DOUBLE", "ts": TS,
    },
    "assignments": {
        "experiment_id": "VARCHAR", "variant": "VARCHAR", "request_id": "VARCHAR",
        "user_id": "VARCHAR", "ts": TS, "context": "MAP(VARCHAR, VARCHAR)",
    },
    "ranker_a": {
        "request_id": "VARCHAR", "user_id": "VARCHAR", "ts": TS, "items": "VARCHAR[]",
        "context": "MAP(VARCHAR, VARCHAR)",
    },
}  # fmt: skip
COLUMNS["ranker_b"] = COLUMNS["ranker_a"]
LOAD_SEQ = {"exposures": 1, "outcomes": 2, "assignments": 3, "ranker_a": 4, "ranker_b": 5}

# Interleaving from the rankers' lists: with disjoint lists every item of A's list is A's team
# whatever the coin, so the credits are clicks on A's items vs clicks on B's items per request
# present in both rankers (the first list of a request in file order).
INTERLEAVING_HAND_SQL = """
with
a as (
    select request_id, unnest(items[1:{half}]) as item_id from raw.ranker_a
    qualify row_number() over (partition by request_id order by line_no) = 1
),
b as (
    select request_id, unnest(items[1:{half}]) as item_id from raw.ranker_b
    qualify row_number() over (partition by request_id order by line_no) = 1
),
requests as (select distinct request_id from a intersect select distinct request_id from b),
clicks as (
    select request_id, item_id, count(*) as clicks from raw.outcomes
    where event_type = 'click' group by all
),
credits as (
    select r.request_id,
        coalesce(sum(c.clicks) filter (where t.team = 'A'), 0) as credits_a,
        coalesce(sum(c.clicks) filter (where t.team = 'B'), 0) as credits_b
    from requests as r
    left join (
        select request_id, item_id, 'A' as team from a
        union all
        select request_id, item_id, 'B' from b
    ) as t using (request_id)
    left join clicks as c using (request_id, item_id)
    group by r.request_id
)
select
    count(*) as requests,
    count(*) filter (where credits_a > credits_b) as wins_a,
    count(*) filter (where credits_b > credits_a) as wins_b,
    count(*) filter (where credits_a = credits_b) as ties
from credits
"""


# IPS as bench_ope.HAND_IPS_SQL, with the reference's reward rule (reward_model: reference): per
# (request, item) the last outcome in file order decides, whatever its type: a click rewards its
# value when non-zero, else 1; a later conversion hides an earlier click.
OPE_HAND_SQL = """
with
items as (
    select load_seq, line_no, coalesce(request_id, '') as request_id, unnest(items) as it
    from raw.exposures
),
rewards as (
    select
        coalesce(request_id, '') as request_id,
        coalesce(item_id, '') as item_id,
        arg_max(
            case
                when lower(coalesce(event_type, '')) <> 'click' then 0.0
                when coalesce(value, 0) = 0 then 1.0
                else value
            end,
            (load_seq, line_no)
        ) as r
    from raw.outcomes
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


def limit_sql(mode: str) -> str:
    if mode == "offline":
        from bench_offline import hand_sql

        return hand_sql(OFFLINE_K, OFFLINE_SLICE_KEYS)
    if mode == "experiment":
        from bench_experiment import hand_sql

        return hand_sql()
    if mode == "ope":
        return OPE_HAND_SQL
    return INTERLEAVING_HAND_SQL.format(half=INTERLEAVING_ITEMS)


def limit_child_main(argv: list[str]) -> int:
    """Child: read the JSONL into a new database with read_json, run the hand query, write
    {load_seconds, query_seconds, columns, rows} as JSON."""
    db, spec, out, threads = argv
    job = json.loads(Path(spec).read_text())
    con = duckdb.connect(db)
    session_settings(con, int(threads), None)
    con.execute("set preserve_insertion_order = true")  # rowid = file order
    con.execute("create schema raw")
    t0 = time.perf_counter()
    for role, path in job["files"].items():
        cols = ", ".join(f"'{name}': '{typ}'" for name, typ in COLUMNS[role].items())
        con.execute(
            f"create table raw.t_{role} as select * from read_json("
            f"'{path}', format = 'newline_delimited', columns = {{{cols}}})"
        )
        names = ", ".join(COLUMNS[role])
        con.execute(
            f"create view raw.{role} as select {LOAD_SEQ[role]}::bigint as load_seq, "
            f"rowid + 1 as line_no, {names} from raw.t_{role}"
        )
    t1 = time.perf_counter()
    cur = con.execute(job["sql"])
    rows = cur.fetchall()
    t2 = time.perf_counter()
    columns = [d[0] for d in cur.description]
    con.close()
    result = {"load_seconds": t1 - t0, "query_seconds": t2 - t1, "columns": columns, "rows": rows}
    Path(out).write_text(json.dumps(result, default=str))
    return 0


@dataclass
class LimitRun:
    measured: Measured
    load_seconds: float
    query_seconds: float
    rows: list[dict[str, Any]]


def run_limit(mode: str, inputs: Inputs, run_dir: Path, threads: int) -> LimitRun:
    db = run_dir / "limit.duckdb"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    spec = run_dir / "limit.json"
    spec.write_text(
        json.dumps({"files": {k: str(v) for k, v in inputs.files.items()}, "sql": limit_sql(mode)})
    )
    out = run_dir / "limit.out.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), LIMIT_CHILD, str(db), str(spec),
           str(out), str(threads)]  # fmt: skip
    log = run_dir / "limit.log"
    measured = run_measured(cmd, dict(os.environ), log)
    if measured.returncode != 0 or not out.exists():
        raise BenchError(f"{mode}: the DuckDB limit failed (exit {measured.returncode}):\n"
                         f"{tail(log)}")  # fmt: skip
    for path in (db, Path(f"{db}.wal")):
        path.unlink(missing_ok=True)
    data = json.loads(out.read_text())
    rows = [dict(zip(data["columns"], r, strict=True)) for r in data["rows"]]
    return LimitRun(measured, data["load_seconds"], data["query_seconds"], rows)


# ---------------------------------------------------------------------------------------------
# The CLIs


@dataclass
class CliRun:
    measured: Measured
    report: dict[str, Any]
    killed_gb: float = 0.0  # > 0: killed when its RSS went above this many GB (no report)


def run_cli(
    cmd: list[str], env: dict[str, str], output: Path, log: Path, ok_codes: tuple[int, ...]
) -> CliRun:
    output.unlink(missing_ok=True)
    measured = run_measured(cmd, env, log)
    if measured.returncode not in ok_codes or not output.exists():
        raise BenchError(f"{cmd[0]} run exited {measured.returncode}:\n{tail(log)}")
    return CliRun(measured, json.loads(output.read_text()))


def run_ours(mode: str, inputs: Inputs, folder: Path, cache: Path) -> CliRun:
    folder.mkdir(parents=True, exist_ok=True)
    # The same stem cold and warm, at every size: the same plan key (a plan does not depend on
    # the data), so a warm run above --cold-up-to replays the plan of the mode's smaller size.
    db = folder / f"{mode}.duckdb"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    output = folder / "report.json"
    cmd = [str(PROJECT / ".venv" / "bin" / "recsys-eval"), "run", "--mode", mode,
           "--dataset", str(inputs.dataset), "--config", str(inputs.ours_config),
           "--output", str(output), "--database", str(db)]  # fmt: skip
    env = {**os.environ, "RECSYS_EVAL_CACHE_DIR": str(cache),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}  # fmt: skip
    ok = (0, 2, 3) if mode == "experiment" else (0,)  # 2 hold, 3 roll back: a decision
    run = run_cli(cmd, env, output, folder / "run.log", ok)
    for path in (db, Path(f"{db}.wal")):
        path.unlink(missing_ok=True)
    return run


def run_reference(
    binary: Path, mode: str, inputs: Inputs, folder: Path, max_rss_gb: float
) -> CliRun:
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / "report.json"
    cmd = [str(binary), "run", "--mode", mode, "--dataset", str(inputs.dataset),
           "--config", str(inputs.config), "--output", str(output)]  # fmt: skip
    output.unlink(missing_ok=True)
    measured = run_measured(cmd, dict(os.environ), folder / "run.log", max_rss_gb)
    assert RUNNER is not None
    if RUNNER.killed:
        return CliRun(measured, {}, killed_gb=max_rss_gb)
    if measured.returncode not in (0, 2, 3) or not output.exists():
        raise BenchError(f"{cmd[0]} run exited {measured.returncode}:\n{tail(folder / 'run.log')}")
    return CliRun(measured, json.loads(output.read_text()))


# ---------------------------------------------------------------------------------------------
# Agreement


@dataclass
class Agreement:
    tolerance: float
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    compared: int = 0

    def value(self, name: str, ours: Any, other: Any) -> None:
        self.compared += 1
        if isinstance(ours, bool) or isinstance(other, bool) or isinstance(ours, str):
            ok = ours == other
        elif ours is None or other is None:
            ok = ours is None and other is None
        else:
            a, b = float(ours), float(other)
            diff = abs(a - b)
            ok = (
                math.isfinite(a)
                and math.isfinite(b)
                and (diff <= self.tolerance * max(abs(a), abs(b)) or diff <= 1e-15)
            )
        line = f"  {'ok  ' if ok else 'DIFF'} {name}: ours {ours!r} / {other!r}"
        self.lines.append(line)
        if not ok:
            self.problems.append(line.strip())

    def missing(self, name: str) -> None:
        self.problems.append(f"{name}: missing on one side")
        self.lines.append(f"  DIFF {name}: missing on one side")


def keyed(items: list[dict[str, Any]], *keys: str) -> dict[str, dict[str, Any]]:
    return {"/".join(str(item.get(k)) for k in keys): item for item in items}


def flat_numbers(node: Any, prefix: str, out: dict[str, Any], list_keys: tuple[str, ...]) -> None:
    """Numbers (and booleans) of a report section by path; list items keyed by their first
    identifying field of `list_keys` present (variant, metric, name)."""
    if isinstance(node, dict):
        for k, v in node.items():
            flat_numbers(v, f"{prefix}.{k}" if prefix else k, out, list_keys)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            tag = str(i)
            if isinstance(item, dict):
                ids = [str(item[k]) for k in list_keys if k in item and isinstance(item[k], str)]
                tag = "/".join(ids) or tag
            flat_numbers(item, f"{prefix}[{tag}]", out, list_keys)
    elif isinstance(node, (int, float)) and node is not None:
        out[prefix] = node


# Paths compared between ours and the reference, per mode (prefix match on the flattened
# section), and the fields left out where the definitions differ on purpose.
REFERENCE_PATHS = {
    "offline": ("offline.metrics", "offline.by_segment"),
    "experiment": (
        "experiment.variants",
        "experiment.by_segment",
        "experiment.significance",
        "experiment.guardrails.per_variant",
        "experiment.srm",
        "experiment.cuped",
    ),
    "ope": ("ope.estimators", "ope.weight_stats", "ope.diagnostics"),
    "interleaving": (
        "interleaving.requests",
        "interleaving.wins_a",
        "interleaving.wins_b",
        "interleaving.ties",
        "interleaving.win_rate_a",
        "interleaving.win_rate_b",
        "interleaving.p_value",
    ),
}
LIST_KEYS = ("variant", "metric", "name")


def compare_reference(
    mode: str, ours: dict[str, Any], ref: dict[str, Any], agree: Agreement
) -> None:
    mine: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    flat_numbers({mode: ours.get(mode)}, "", mine, LIST_KEYS)
    flat_numbers({mode: ref.get(mode)}, "", theirs, LIST_KEYS)
    agree.value("summary.cases_evaluated", ours["summary"]["cases_evaluated"],
                ref["summary"]["cases_evaluated"])  # fmt: skip
    for path in sorted(set(theirs)):
        if not path.startswith(REFERENCE_PATHS[mode]):
            continue
        if path not in mine:
            agree.missing(path)
            continue
        agree.value(path, mine[path], theirs[path])


def compare_limit(mode: str, report: dict[str, Any], limit: LimitRun, agree: Agreement) -> None:
    rows = limit.rows
    if mode == "offline":
        from bench_offline import hand_metrics

        names = {f"{f}@{OFFLINE_K}" for f in OFFLINE_FAMILIES}
        hand = {key: v for key, v in hand_metrics(rows, OFFLINE_K).items() if key[2] in names}
        section = report["offline"]
        ours = {("global", "__all__", m["name"]): m["value"] for m in section["metrics"]}
        for seg, metrics in (section.get("by_segment") or {}).items():
            ours.update({("segment", seg, m["name"]): m["value"] for m in metrics})
        for key in sorted(set(hand) | set(ours)):
            if key not in hand or key not in ours:
                agree.missing("/".join(key))
            else:
                agree.value("/".join(key), ours[key], hand[key][0])
    elif mode == "experiment":
        hand = {r["variant"]: r for r in rows if r["kind"] == "variant" and r["scope"] == "global"}
        ours = keyed(report["experiment"]["variants"], "variant")
        for variant in sorted(set(hand) | set(ours)):
            if variant not in hand or variant not in ours:
                agree.missing(f"variants[{variant}]")
                continue
            for col in ("exposures", "clicks", "conversions", "revenue", "ctr",
                        "conversion_rate", "revenue_per_request"):  # fmt: skip
                agree.value(f"variants[{variant}].{col}", ours[variant][col], hand[variant][col])
    elif mode == "ope":
        ips = keyed(report["ope"]["estimators"], "name")["ips"]["value"]
        agree.value("ope ips", ips, rows[0]["ips"])
        agree.value("ope samples", report["summary"]["cases_evaluated"], rows[0]["samples"])
    else:
        section = report["interleaving"]
        for col in ("requests", "wins_a", "wins_b", "ties"):
            agree.value(f"interleaving.{col}", section[col], rows[0][col])


# ---------------------------------------------------------------------------------------------
# Main


@dataclass
class Result:
    mode: str
    n: int
    lines: int
    cold: CliRun | None  # None: above --cold-up-to (the warm run replays a smaller size's plan)
    warm: CliRun
    limit: LimitRun | None  # None: the tiny dataset (the hand queries fit the generated data)
    reference: CliRun | None
    vs_reference: Agreement | None
    vs_limit: Agreement
    load: tuple[float, float, float]  # 1 / 5 / 15 min load averages after the runs
    warm_replayed: bool  # False: the warm run built with dbt (it kept a new plan, or none)


def secs(m: Measured | None) -> str:
    return "skipped" if m is None else f"{m.seconds:.2f} s (cpu {m.cpu_seconds:.1f})"


def measured(run: CliRun | LimitRun | None) -> Measured | None:
    """A run's measurement; None when it was skipped or killed above its RSS cap."""
    if run is None or getattr(run, "killed_gb", 0):
        return None
    return run.measured


def ref_secs(run: CliRun | None) -> str:
    if run is not None and run.killed_gb:
        return f"killed above {run.killed_gb:g} GB RSS after {run.measured.seconds:.0f} s"
    return secs(measured(run))


def rss(m: Measured | None) -> str:
    return "-" if m is None else f"{m.peak_rss_bytes / GB:.2f}"


def ratio(a: Measured | None, b: Measured | None) -> str:
    return "-" if a is None or b is None else f"{a.seconds / max(b.seconds, 1e-9):.2f}"


def size_label(n: int) -> str:
    return "tiny" if n == 0 else f"{n:,}"


def markdown(results: list[Result], reference_note: str) -> str:
    head = (
        "| mode | exposures | ours cold | ours warm | DuckDB limit | reference | cold / ref | "
        "warm / ref | warm / limit | peak RSS GB: cold / warm / limit / ref | load avg |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r.mode} | {size_label(r.n)} | {secs(measured(r.cold))} | {secs(r.warm.measured)}"
        f"{'' if r.warm_replayed else ' (dbt)'} | "
        f"{secs(measured(r.limit))} | {ref_secs(r.reference)} | "
        f"{ratio(measured(r.cold), measured(r.reference))} | "
        f"{ratio(r.warm.measured, measured(r.reference))} | "
        f"{ratio(r.warm.measured, measured(r.limit))} | "
        f"{rss(measured(r.cold))} / {rss(r.warm.measured)} / {rss(measured(r.limit))} / "
        f"{rss(measured(r.reference))} | {r.load[0]:.1f} |\n"
        for r in results
    )
    # the legend of a warm time marked (dbt), only when a row has one
    note = (
        "\nwarm (dbt): the repeated run did not replay the plan (the plan key changed between "
        "the runs, e.g. a project file edited, or the simulated interleaving's longest list)\n"
        if any(not r.warm_replayed for r in results)
        else ""
    )
    return head + body + note + reference_note


def targets(results: list[Result]) -> list[str]:
    out = []
    for n in sorted({r.n for r in results}):
        rs = [r for r in results if r.n == n]
        if n in (100_000, 1_000_000):
            for label in ("warm", "cold"):
                ours = {r.mode: measured(getattr(r, label)) for r in rs}
                refs = {r.mode: measured(r.reference) for r in rs}
                if not all(ours.values()):
                    continue  # the cold runs were skipped at this size
                slower = [
                    m for m, o in ours.items() if o and refs[m] and o.seconds > refs[m].seconds
                ]
                verdict = "met" if not slower else f"NOT met ({', '.join(slower)})"
                if not all(refs.values()):
                    verdict = "unknown (reference skipped)"
                out.append(f"{n:,}: every mode no slower than the reference ({label}): {verdict}")
        if n == 0:
            worst = max(r.warm.measured.seconds for r in rs)
            out.append(
                f"tiny: end to end under {TARGET_TINY_S:g} s (warm, slowest mode {worst:.2f} s): "
                + ("met" if worst < TARGET_TINY_S else "NOT met")
            )
        elif n <= 10_000:
            worst = max(r.warm.measured.seconds for r in rs)
            out.append(
                f"{n:,}: end to end under {TARGET_10K_S:g} s (warm, slowest mode {worst:.2f} s): "
                + ("met" if worst < TARGET_10K_S else "NOT met")
            )
        if n >= 10_000_000:
            peak = max(max(m.peak_rss_bytes for m in (measured(r.cold), r.warm.measured) if m)
                       for r in rs)  # fmt: skip
            out.append(
                f"{n:,}: completes under {TARGET_10M_RSS_GB:g} GB RSS ({peak / GB:.2f} GB): "
                + ("met" if peak < TARGET_10M_RSS_GB * GB else "NOT met")
            )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--exposures", type=int, nargs="+", default=[10_000], metavar="N")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads of the limit")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--click-rate", type=float, default=0.03, help="interleaving clicks")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="the Go binary")
    parser.add_argument("--tolerance", type=float, default=1e-9, help="relative")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--workdir", type=Path, help="None = a temp dir, removed unless --keep")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="print only differing values")
    parser.add_argument(
        "--cold-up-to",
        type=int,
        default=10**18,
        metavar="N",
        help="skip ours cold above N exposures: the warm run replays the plan kept by the same "
        "mode's cold run at a smaller size of this invocation (a plan does not depend on the data)",
    )
    parser.add_argument(
        "--reference-max-rss-gb",
        type=float,
        default=16.0,
        help="kill the reference above this RSS (its in-memory design can exhaust the machine at "
        "10M); the table then says so; 0 = no cap",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="first race the bundled tiny dataset with the reference's configs (no DuckDB limit)",
    )
    args = parser.parse_args(argv)
    if any(n <= 0 for n in args.exposures) or args.threads <= 0:
        parser.error("--exposures and --threads must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    global RUNNER
    RUNNER = Runner()  # first, while this process is small
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bench-race-", dir="/tmp"))).resolve()
    created = args.workdir is None or not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=workdir))  # new per invocation
    binary = args.reference if args.reference.exists() else None
    note = (
        f"\nreference: {binary}\n"
        if binary
        else f"\nreference column skipped: {args.reference} is absent\n"
    )
    print(f"workdir {workdir}; RECSYS_EVAL_CACHE_DIR {cache}; {note.strip()}", flush=True)
    results: list[Result] = []
    failed = False
    try:
        for n in [0] * args.tiny + args.exposures:
            size_dir = workdir / ("tiny" if n == 0 else f"n{n}")
            for mode in args.modes:
                inputs = prepare_tiny(mode, workdir) if n == 0 else prepare(mode, n, args, size_dir)
                print(f"\n== {mode}, {size_label(n)} exposures: {inputs.lines:,} JSONL lines "
                      f"(written in {inputs.seconds:.1f} s); load {os.getloadavg()[0]:.1f}",
                      flush=True)  # fmt: skip
                run_dir = size_dir / mode
                cold = None
                if n <= args.cold_up_to:
                    cold = run_ours(mode, inputs, run_dir / "cold", cache)
                print(f"   ours cold   {secs(measured(cold))}, RSS {rss(measured(cold))} GB",
                      flush=True)  # fmt: skip
                plans = {p: p.stat().st_mtime_ns for p in (cache / "plans").glob("*.json")}
                warm = run_ours(mode, inputs, run_dir / "warm", cache)
                # a replay writes no plan; a dbt build writes one (a new key, or the same key
                # again when the simulated interleaving's guard failed)
                replayed = bool(plans) and plans == {
                    p: p.stat().st_mtime_ns for p in (cache / "plans").glob("*.json")
                }
                print(f"   ours warm   {secs(warm.measured)}, RSS {rss(warm.measured)} GB, "
                      f"{'plan replayed' if replayed else 'built with dbt'}",
                      flush=True)  # fmt: skip
                limit = None if n == 0 else run_limit(mode, inputs, run_dir, args.threads)
                if limit:
                    print(f"   limit       {secs(limit.measured)}, RSS {rss(limit.measured)} GB "
                          f"(read_json {limit.load_seconds:.2f} s + query "
                          f"{limit.query_seconds:.2f} s)", flush=True)  # fmt: skip
                ref = None
                if binary:
                    ref = run_reference(binary, mode, inputs, run_dir / "reference",
                                        args.reference_max_rss_gb)  # fmt: skip
                print(f"   reference   {ref_secs(ref)}, RSS {rss(measured(ref))} GB",
                      flush=True)  # fmt: skip
                vs_limit = Agreement(args.tolerance)
                if limit:
                    compare_limit(mode, warm.report, limit, vs_limit)
                vs_cold = Agreement(args.tolerance)
                flat_cold: dict[str, Any] = {}
                flat_warm: dict[str, Any] = {}
                if cold:
                    flat_numbers(cold.report.get(mode), mode, flat_cold, LIST_KEYS)
                    flat_numbers(warm.report.get(mode), mode, flat_warm, LIST_KEYS)
                if flat_cold != flat_warm:
                    vs_cold.problems.append("the warm report's numbers differ from the cold's")
                vs_ref = None
                if ref and not ref.killed_gb:
                    vs_ref = Agreement(args.tolerance)
                    compare_reference(mode, warm.report, ref.report, vs_ref)
                for label, agree in (("vs the DuckDB limit", limit and vs_limit),
                                     ("vs the reference", vs_ref)):  # fmt: skip
                    if agree is None:
                        continue
                    print(f"   {label}: {agree.compared} values, {len(agree.problems)} differ"
                          f" (tolerance {args.tolerance:g} relative)")  # fmt: skip
                    for line in agree.problems if args.quiet else agree.lines:
                        print(line)
                for problem in vs_cold.problems:
                    print(f"   DIFF {problem}")
                failed |= bool(
                    vs_limit.problems or vs_cold.problems or (vs_ref and vs_ref.problems)
                )
                results.append(Result(mode, n, inputs.lines, cold, warm, limit, ref, vs_ref,
                                      vs_limit, os.getloadavg(), replayed))  # fmt: skip
            if not args.keep:
                shutil.rmtree(size_dir, ignore_errors=True)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        failed = True
    finally:
        RUNNER.close()
        if args.keep:
            print(f"\nkept {workdir}")
        elif created:
            shutil.rmtree(workdir, ignore_errors=True)
    table = markdown(results, note)
    print("\n" + table)
    for line in targets(results):
        print(line)
    if args.markdown:
        args.markdown.write_text(table + "".join(f"\n{t}" for t in targets(results)) + "\n")
    if failed:
        print("FAIL: a run failed or a value disagrees (above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == LIMIT_CHILD:
        sys.exit(limit_child_main(sys.argv[2:]))
    sys.exit(main())
