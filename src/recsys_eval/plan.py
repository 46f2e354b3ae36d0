"""The run's dbt build without dbt: the compiled SQL of an earlier build, executed in DuckDB.

`recsys-eval run` builds the same models with the same vars again and again (CI runs one config on
every new dataset). dbt spends most of such a run outside the SQL: importing itself and its
adapter, parsing the project, and ~0.1 s of bookkeeping per node (16-60 models and 60-140 tests).
None of that depends on the data. So after a successful `dbt build`, the build's plan is kept: the
compiled SQL of every model and test it ran, in dependency order, with each test's severity and
thresholds. The next build with the same key runs that plan directly on a DuckDB connection:
the same statements, the same tests and warnings, the same failures, without dbt.

The key is everything the compiled SQL depends on: this package's version, the content of every
project file dbt reads (models, macros, tests, dbt_project.yml, profiles.yml), the installed dbt
and dbt-duckdb versions, the database's catalog name (the file name's stem, which qualifies every
relation), the vars (as passed to dbt, encoded) and the selection. A model whose SQL depends on
the data (it calls run_query, statement, load_relation ... at compile time) makes the build
uncachable: it always runs through dbt. So do `--full-tests` builds (dbt's unit tests need dbt).
The one exception is a value read through the macro `recsys_eval.compile_time_value` (the
simulated interleaving's walk length): its compiled SQL carries a guard, the query and the value
it returned; replay runs the query again just before that model and goes on only when the value
is the same. Otherwise the replay stops (PlanStale) and the run builds with dbt.

Plans live in the per-user cache folder (see dbt_runner.parse_cache_dir; mode 0700, files 0600)
and are used only when owned by this user and not writable by others: a plan is SQL that runs.
Off with RECSYS_EVAL_PLAN_CACHE=0.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import heapq
import json
import os
import queue
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

PLAN_FORMAT = 1
PROJECT_FOLDERS = ("models", "macros", "tests/dbt", "seeds")  # dbt_project.yml's *-paths
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "selectors.yml")
# Macros whose use at compile time makes a model's SQL depend on the database's content.
INTROSPECTION_MACROS = frozenset(
    {
        "macro.dbt.run_query",
        "macro.dbt.statement",
        "macro.dbt.load_result",
        "macro.dbt.load_relation",
        "macro.dbt.get_columns_in_relation",
        "macro.dbt.get_relation",
    }
)
# The macro that reads the database at compile time under a replay guard (see the docstring).
GUARDED_MACRO = "macro.recsys_eval.compile_time_value"
GUARD = re.compile(r"/\* recsys_eval\.plan_guard (\{.*?\}) \*/")
MAX_PLANS = 32
REPLAY_THREADS = 3  # statements of a replayed plan at a time (see execute)


class PlanStale(Exception):
    """A guarded compile-time value differs from the plan's: the SQL must be compiled again."""


@dataclass(frozen=True)
class Step:
    """One node of the plan: a model to (re)create or a data test to evaluate."""

    unique_id: str
    kind: str  # model | test
    sql: str
    depends_on: tuple[str, ...]
    # models
    materialized: str = ""
    database: str = ""
    schema: str = ""
    identifier: str = ""
    # tests
    severity: str = "error"
    fail_calc: str = "count(*)"
    warn_if: str = "!= 0"
    error_if: str = "!= 0"
    limit: int | None = None


@dataclass(frozen=True)
class StepResult:
    unique_id: str
    status: str  # success | pass | warn | fail | error | skipped
    message: str


def enabled() -> bool:
    return os.environ.get("RECSYS_EVAL_PLAN_CACHE", "1").strip() != "0"


# --- the key ------------------------------------------------------------------------------------


def project_digest(project: Path) -> str:
    """SHA-256 over the path and content of every project file dbt reads."""
    digest = hashlib.sha256()
    files = [project / name for name in PROJECT_FILES if (project / name).is_file()]
    for folder in PROJECT_FOLDERS:
        if (project / folder).is_dir():
            files += sorted(
                p
                for p in (project / folder).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts
            )
    for path in files:
        digest.update(str(path.relative_to(project)).encode("utf-8", "surrogatepass") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("dbt-core", "dbt-duckdb", "duckdb"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = ""
    return out


def plan_key(
    package_version: str,
    project: Path,
    database: Path,
    encoded_vars: dict[str, Any],
    select: list[str],
    exclude: list[str],
) -> str:
    key = json.dumps(
        {
            "format": PLAN_FORMAT,
            "package": package_version,
            "project": project_digest(project),
            "versions": _versions(),
            "catalog": Path(database).stem,
            "vars": encoded_vars,
            "select": list(select),
            "exclude": list(exclude),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


# --- from a dbt build -----------------------------------------------------------------------------


def _macro_closure(manifest: dict[str, Any], roots: list[str]) -> set[str]:
    """The macros `roots` call, directly or not, but not what the guarded macro calls (its
    introspection is checked at replay time)."""
    macros = manifest.get("macros", {})
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name == GUARDED_MACRO:
            continue
        todo += macros.get(name, {}).get("depends_on", {}).get("macros", [])
    return seen


def from_build(target_path: Path) -> list[Step] | None:
    """The plan of the build whose artifacts are in `target_path`, or None when it cannot be
    replayed (a node that is not a model or data test, a model that reads the database at compile
    time, a node without compiled SQL, a node that did not succeed)."""
    try:
        return _from_build(target_path)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not replayable: the next run builds with dbt again


def _from_build(target_path: Path) -> list[Step] | None:
    manifest = json.loads((target_path / "manifest.json").read_text())
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    executed = [r["unique_id"] for r in results]
    if any(r.get("status") not in ("success", "pass", "warn") for r in results):
        return None
    steps: dict[str, Step] = {}
    for uid in executed:
        node = manifest["nodes"].get(uid)
        if node is None or node.get("resource_type") not in ("model", "test"):
            return None
        sql = node.get("compiled_code")
        if not sql:
            return None
        deps = tuple(d for d in node["depends_on"]["nodes"] if d in executed)
        config = node.get("config", {})
        if node["resource_type"] == "model":
            materialized = config.get("materialized")
            if materialized not in ("view", "table"):
                return None
            if _macro_closure(manifest, node["depends_on"]["macros"]) & INTROSPECTION_MACROS:
                return None
            steps[uid] = Step(
                uid, "model", sql, deps, materialized=materialized,
                database=node["database"], schema=node["schema"],
                identifier=node.get("alias") or node["name"],
            )  # fmt: skip
        else:
            if config.get("store_failures"):
                return None
            steps[uid] = Step(
                uid, "test", sql, deps,
                severity=str(config.get("severity", "error")).lower(),
                fail_calc=config.get("fail_calc") or "count(*)",
                warn_if=config.get("warn_if") or "!= 0",
                error_if=config.get("error_if") or "!= 0",
                limit=config.get("limit"),
            )  # fmt: skip
    return _ordered(steps, executed)


def _waits(steps: dict[str, Step]) -> dict[str, set[str]]:
    """What each node waits for in dbt build's order: its own dependencies, and for a model also
    the tests of the models it reads (unless such a test itself reads this model or its
    descendants, as a relationships test between parent and child does)."""
    ancestors: dict[str, set[str]] = {}

    def upstream(uid: str) -> set[str]:
        if uid not in ancestors:
            ancestors[uid] = set()
            for dep in steps[uid].depends_on:
                ancestors[uid] |= {dep} | upstream(dep)
        return ancestors[uid]

    waits = {uid: set(step.depends_on) for uid, step in steps.items()}
    for uid, step in steps.items():
        if step.kind != "test":
            continue
        test_upstream = upstream(uid)
        for child, child_step in steps.items():
            if child_step.kind != "model" or child in test_upstream:
                continue
            if any(parent in child_step.depends_on for parent in step.depends_on):
                waits[child].add(uid)
    return waits


def _ordered(steps: dict[str, Step], order: list[str]) -> list[Step] | None:
    """Dependency order (dbt build's), stable in the order dbt ran the nodes; None on a cycle."""
    waits = _waits(steps)
    done: set[str] = set()
    out: list[Step] = []
    pending = [uid for uid in order if uid in steps]
    while pending:
        ready = [uid for uid in pending if waits[uid] <= done]
        if not ready:
            return None
        for uid in ready:
            out.append(steps[uid])
            done.add(uid)
        pending = [uid for uid in pending if uid not in done]
    return out


# --- the cache ------------------------------------------------------------------------------------


def _trusted(path: Path) -> bool:
    """Owned by this user and writable by nobody else (the file and its folder)."""
    try:
        for item in (path, path.parent):
            info = item.lstat()
            if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
                return False
            if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return False
    except OSError:
        return False
    return True


def load(folder: Path | None, key: str) -> list[Step] | None:
    if folder is None or not enabled():
        return None
    path = folder / f"{key}.json"
    if not path.is_file() or not _trusted(path):
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != PLAN_FORMAT or data.get("key") != key:
            return None
        return [Step(**{**step, "depends_on": tuple(step["depends_on"])}) for step in data["steps"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save(folder: Path | None, key: str, steps: list[Step]) -> None:
    """Keep the plan (atomic, private, best effort: a cache that cannot be written only costs the
    next run a dbt build)."""
    if folder is None or not enabled():
        return
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".plan-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(
                    {"format": PLAN_FORMAT, "key": key, "steps": [asdict(s) for s in steps]}, out
                )
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        plans = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in plans[MAX_PLANS:]:
            old.unlink(missing_ok=True)


# --- running a plan -------------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _test_message(failures: int, verb: str, condition: str) -> str:
    noun = "result" if failures == 1 else "results"
    return f"Got {failures} {noun}, configured to {verb} if {condition}"


def execute(
    con: Any,
    steps: list[Step],
    on_step: Callable[[int, int], None] | None = None,
    threads: int | None = None,
) -> list[StepResult]:
    """Run the plan on an open DuckDB connection, as `dbt build` does: each model is created as
    its view or table, each test counted against its thresholds; a node whose upstream failed is
    skipped. Returns every node's result in the plan's order (failures included, not raised).
    `on_step(done, total)` is called before the first step and after each one (a progress
    display).

    Independent nodes run at the same time, as dbt's threads do: up to `threads` statements
    (default REPLAY_THREADS) at once, each on its own cursor of `con` (DuckDB releases the GIL
    while a statement runs). A node starts only once everything it waits for in dbt build's order
    has finished (_waits: its parents, and for a model the tests of the models it reads), so the
    results, skips and failures are those of the serial order. Among the nodes ready to run, the
    one with the longest chain of nodes waiting behind it goes first."""
    total = len(steps)
    if on_step is not None:
        on_step(0, total)
    if not steps:
        return []
    by_id = {s.unique_id: s for s in steps}
    waits = _waits(by_id)
    position = {s.unique_id: i for i, s in enumerate(steps)}
    waiting_for = {uid: {w for w in need if w in by_id} for uid, need in waits.items()}
    behind: dict[str, list[str]] = {uid: [] for uid in by_id}
    for uid, need in waiting_for.items():
        for other in need:
            behind[other].append(uid)
    depth = _chain_lengths(steps, behind)
    # Schemas first, one at a time: concurrent creations of the same schema would conflict.
    for database, schema in dict.fromkeys(
        (s.database, s.schema) for s in steps if s.kind == "model"
    ):
        con.execute(f"create schema if not exists {_quote(database)}.{_quote(schema)}")

    n_threads = max(1, min(threads or REPLAY_THREADS, total))
    results: dict[str, StepResult] = {}
    broken: set[str] = set()
    ready = [(-depth[uid], position[uid], uid) for uid, need in waiting_for.items() if not need]
    heapq.heapify(ready)
    cursors: queue.SimpleQueue[Any] = queue.SimpleQueue()
    opened = []
    for _ in range(n_threads):
        cur = con.cursor()
        opened.append(cur)
        cur.execute("set enable_progress_bar = false")
        cursors.put(cur)

    def run(step: Step) -> StepResult:
        cur = cursors.get()
        try:
            return _run_step(cur, step)
        finally:
            cursors.put(cur)

    def finish(uid: str, result: StepResult) -> None:
        if result.status in ("error", "fail", "skipped"):
            broken.add(uid)
        results[uid] = result
        for other in behind[uid]:
            waiting_for[other].discard(uid)
            if not waiting_for[other]:
                heapq.heappush(ready, (-depth[other], position[other], other))
        if on_step is not None:
            on_step(len(results), total)

    running: dict[concurrent.futures.Future[StepResult], str] = {}
    pool = concurrent.futures.ThreadPoolExecutor(n_threads, thread_name_prefix="plan-replay")
    try:
        while ready or running:
            while ready and len(running) < n_threads:
                uid = heapq.heappop(ready)[2]
                if waits[uid] & broken:
                    finish(uid, StepResult(uid, "skipped", "an upstream node failed"))
                    continue
                running[pool.submit(run, by_id[uid])] = uid
            if not running:
                continue
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in sorted(finished, key=lambda f: position[running[f]]):
                finish(running.pop(future), future.result())  # PlanStale is raised here
    except BaseException:
        for cur in opened:  # stop what still runs (Ctrl-C, a stale plan), then wait for it
            with contextlib.suppress(Exception):
                cur.interrupt()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for cur in opened:
            with contextlib.suppress(Exception):
                cur.close()
    if len(results) != total:  # a cycle: _ordered refuses such a plan when it is made
        raise ValueError("the plan's nodes wait for each other in a cycle")
    return [results[s.unique_id] for s in steps]


def _chain_lengths(steps: list[Step], behind: dict[str, list[str]]) -> dict[str, int]:
    """For each node, the length of the longest chain of nodes that wait for it (itself
    included): the scheduler's priority (the critical path first)."""
    depth: dict[str, int] = {}
    for step in reversed(steps):  # the plan's order: whatever waits for a node comes after it
        uid = step.unique_id
        depth[uid] = 1 + max((depth.get(other, 0) for other in behind[uid]), default=0)
    return depth


def _run_step(con: Any, step: Step) -> StepResult:
    """One node; a runtime error becomes its result (as dbt reports it), PlanStale is raised."""
    try:
        return _run_model(con, step) if step.kind == "model" else _run_test(con, step)
    except PlanStale:
        raise
    except Exception as exc:  # reported like dbt's runtime errors
        name = step.unique_id.split(".")[-1]
        return StepResult(step.unique_id, "error", f"Runtime Error in {step.kind} {name}: {exc}")


def check_guards(con: Any, sql: str) -> None:
    """Raise PlanStale when a guarded compile-time query of `sql` now returns another value."""
    for match in GUARD.finditer(sql):
        guard = json.loads(match.group(1))
        value = con.execute(guard["sql"]).fetchone()[0]
        now = None if value is None else str(value)
        if now != guard["value"]:
            raise PlanStale(
                f"{guard['sql']!r} returned {now!r}, the plan was compiled for {guard['value']!r}"
            )


def _run_model(con: Any, step: Step) -> StepResult:
    """Create the model's view or table (its schema exists: see execute)."""
    check_guards(con, step.sql)
    relation = ".".join(_quote(p) for p in (step.database, step.schema, step.identifier))
    other = "table" if step.materialized == "view" else "view"
    con.execute("begin transaction")
    try:
        existing = con.execute(
            "select table_type from information_schema.tables "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [step.database, step.schema, step.identifier],
        ).fetchone()
        if existing and (existing[0] == "VIEW") == (other == "view"):
            con.execute(f"drop {other} {relation}")
        con.execute(f"create or replace {step.materialized} {relation} as (\n{step.sql}\n)")
        con.execute("commit")
    except BaseException:
        with contextlib.suppress(Exception):
            con.execute("rollback")
        raise
    return StepResult(step.unique_id, "success", "OK")


def _run_test(con: Any, step: Step) -> StepResult:
    limit = f"\nlimit {int(step.limit)}" if step.limit is not None else ""
    row = con.execute(
        f"select {step.fail_calc} as failures, "
        f"({step.fail_calc}) {step.warn_if} as should_warn, "
        f"({step.fail_calc}) {step.error_if} as should_error "
        f"from (\n{step.sql}{limit}\n) as dbt_internal_test"
    ).fetchone()
    failures = int(row[0] or 0)
    if step.severity == "error" and row[2]:
        return StepResult(step.unique_id, "fail", _test_message(failures, "fail", step.error_if))
    if row[1]:
        return StepResult(step.unique_id, "warn", _test_message(failures, "warn", step.warn_if))
    return StepResult(step.unique_id, "pass", "")
