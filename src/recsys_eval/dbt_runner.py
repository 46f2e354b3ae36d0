"""Run the project's dbt models against a run database, in a child process.

A child process keeps dbt's global state and dbt-duckdb's open database handle out of the
caller: when it exits, the DuckDB file is released and the caller can read the marts.

Parse cache: dbt re-parses the whole project (~4 s) unless it finds the partial-parse state of an
earlier parse with the same vars and the same connection settings (the database path included).
Each build therefore restores and saves `partial_parse.msgpack` in a per-user cache folder, keyed
on (recsys-eval version, project folder, database path, vars): a repeated run of the same config on
the same `--database` starts ~3 s sooner. dbt itself re-parses whatever changed since (files are
checked by hash), so a stale entry costs a parse, never a wrong result. Off with
RECSYS_EVAL_PARSE_CACHE=0; the folder is $RECSYS_EVAL_CACHE_DIR, else $XDG_CACHE_HOME/recsys-eval,
else ~/.cache/recsys-eval (mode 0700; at most MAX_CACHE_ENTRIES entries, oldest removed first).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys_eval import __version__
from recsys_eval import plan as plan_mod
from recsys_eval.dbt_vars import encode as encode_vars
from recsys_eval.errors import ConfigError, RecsysEvalError
from recsys_eval.paths import project_dir
from recsys_eval.warehouse import PRIVATE_UMASK, locked_error

_DBT_MAIN = "import sys; from dbt.cli.main import cli; sys.exit(cli())"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
MAX_CACHE_ENTRIES = 32


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    status: str
    message: str


# What a run leaves out unless --full-tests (dbt selector syntax, see build()).
INVARIANT_EXCLUDE = ("tag:model_invariant", "test_type:unit")


def build(
    database: Path,
    dbt_vars: dict[str, Any],
    select: list[str],
    work_dir: Path,
    parse_cache: bool = True,
    memory_limit: str | None = None,
    full_tests: bool = False,
    progress: Any = None,
    target: str = "duckdb",
) -> list[NodeResult]:
    """`dbt build --select ...` on the DuckDB target (or `target`, a profiles.yml target such as
    spark_thrift: then without plan replay or parse cache) with the run's vars.

    Unless `full_tests`, the build leaves out dbt's unit tests (fixtures, not this data) and the
    data tests tagged model_invariant (INVARIANT_EXCLUDE: the staging and intermediate models'
    own logic, run by the bundled seeds build in CI; on 10M rows each one recomputes a view); the
    tests of the marts still run.

    `parse_cache=False` skips the parse cache (a throw-away database never hits it again).
    `memory_limit` is DuckDB's (e.g. "6GB", "50%"; see `check_memory_limit`); None keeps the
    profile's default (RECSYS_EVAL_DUCKDB_MEMORY_LIMIT, else 80 % of RAM).

    `progress` (a recsys_eval.stages.BuildProgress, optional) is told each replayed step, or
    wraps the dbt subprocess.

    dbt's log goes to `work_dir/logs`. A failed model or error-severity test raises
    RecsysEvalError naming the nodes; the node results (warnings included) are returned.
    """
    proj = project_dir()
    exclude = [] if full_tests else list(INVARIANT_EXCLUDE)
    on_duckdb = target == "duckdb"
    replay = (
        None
        if full_tests or not on_duckdb
        else plan_entry(proj, database, dbt_vars, select, exclude)
    )
    if replay is not None:
        steps = plan_mod.load(replay[0], replay[1])
        if steps is not None:
            on_step = progress.step if progress is not None else None
            try:
                return run_plan(database, steps, work_dir, memory_limit, on_step)
            except plan_mod.PlanStale:
                pass  # a data-dependent model compiles differently now: build with dbt
    target_path = work_dir / "dbt-target"
    cache_entry = parse_cache_entry(proj, database, dbt_vars) if parse_cache and on_duckdb else None
    restore_parse_state(cache_entry, target_path)
    args = [
        "build",
        "--project-dir", str(proj),
        "--profiles-dir", str(proj),
        "--target", target,
        "--target-path", str(target_path),
        "--log-path", str(work_dir / "logs"),
        # Every string that could hold template syntax is encoded (recsys_eval.dbt_vars): dbt
        # renders string vars as Jinja, and the models decode with recsys_eval.config_var.
        "--vars", json.dumps(encode_vars(dbt_vars), ensure_ascii=False),
        "--quiet",
        "--no-use-colors",
        "--select", *select,
    ]  # fmt: skip
    if exclude:
        args += ["--exclude", *exclude]
    env = {
        **os.environ,
        "RECSYS_EVAL_DUCKDB_PATH": str(database),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    if memory_limit is not None:
        env["RECSYS_EVAL_DUCKDB_MEMORY_LIMIT"] = check_memory_limit(memory_limit)
    with progress.dbt() if progress is not None else contextlib.nullcontext():
        proc = subprocess.run(
            [sys.executable, "-c", _DBT_MAIN, *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            umask=PRIVATE_UMASK,  # the database's WAL and dbt's files are private (0600)
        )
    save_parse_state(cache_entry, target_path)
    nodes = _read_results(target_path / "run_results.json")
    failed = [n for n in nodes if n.status in ("error", "fail", "runtime error")]
    if failed or proc.returncode != 0:
        detail = "; ".join(f"{n.unique_id}: {n.status} {n.message}".strip() for n in failed)
        output = f"{detail}\n{proc.stderr}\n{proc.stdout}"
        known = known_failure(database, work_dir, output)
        if known is not None:
            raise known
        if not detail:
            detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RecsysEvalError(f"dbt build failed: {detail}")
    if replay is not None:
        steps = plan_mod.from_build(target_path)
        if steps is not None:
            plan_mod.save(replay[0], replay[1], steps)
    return nodes


def plan_entry(
    proj: Path, database: Path, dbt_vars: dict[str, Any], select: list[str], exclude: list[str]
) -> tuple[Path, str] | None:
    """(folder, key) of this build's plan in the cache (recsys_eval.plan), None when off."""
    folder = parse_cache_dir()
    if folder is None or not plan_mod.enabled():
        return None
    key = plan_mod.plan_key(__version__, proj, database, encode_vars(dbt_vars), select, exclude)
    return folder.parent / "plans", key


def run_plan(
    database: Path,
    steps: list[plan_mod.Step],
    work_dir: Path,
    memory_limit: str | None,
    on_step: Any = None,
) -> list[NodeResult]:
    """The build from a cached plan: the same statements and tests on a DuckDB connection, the
    same failures (raised as from dbt) and warnings (returned)."""
    from recsys_eval.warehouse import connect

    limit = check_memory_limit(
        memory_limit or os.environ.get("RECSYS_EVAL_DUCKDB_MEMORY_LIMIT", "80%")
    )
    con = connect(database)
    try:
        con.execute(f"set memory_limit = '{limit}'")
        results = plan_mod.execute(con, steps, on_step)
    except duckdb_error() as exc:
        known = known_failure(database, work_dir, str(exc))
        raise known if known is not None else RecsysEvalError(f"dbt build failed: {exc}") from None
    finally:
        con.close()
    nodes = [NodeResult(r.unique_id, r.status, r.message) for r in results]
    failed = [n for n in nodes if n.status in ("error", "fail")]
    if failed:
        detail = "; ".join(f"{n.unique_id}: {n.status} {n.message}".strip() for n in failed)
        known = known_failure(database, work_dir, detail)
        if known is not None:
            raise known
        raise RecsysEvalError(f"dbt build failed: {detail}")
    return nodes


def duckdb_error() -> type[Exception]:
    import duckdb

    return duckdb.Error


NO_SPACE_MARKERS = ("No space left on device", "[Errno 28]", "Disk quota exceeded")


def known_failure(database: Path, work_dir: Path, output: str) -> RecsysEvalError | None:
    """A one-line error for the failures a user can act on, found in dbt's output: the database
    locked by another process (`database ... is locked by another run (pid N)`) or a full disk
    (naming the temp folder and the database folder with their free space); None otherwise."""
    locked = locked_error(database, output)
    if locked is not None:
        return locked
    if not any(marker in output for marker in NO_SPACE_MARKERS):
        return None
    folders = [("temp folder", work_dir.parent)]
    if not database.parent.is_relative_to(work_dir):  # a kept --database elsewhere
        folders.append(("database folder", database.parent))
    places = []
    for label, folder in folders:
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:,.0f} MiB free"
        except OSError:
            free = "free space unknown"
        places.append(f"{label} {folder}: {free}")
    return RecsysEvalError(
        f"dbt build failed: No space left on device ({'; '.join(places)}); free "
        "space, or point TMPDIR (temporary files) or --database (the run database) at a disk "
        "with room"
    )


_MEMORY_LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(kb|mb|gb|tb|kib|mib|gib|tib|%)\s*$", re.I)


def check_memory_limit(value: str) -> str:
    """A DuckDB memory_limit: a positive size with a unit (KB..TB, KiB..TiB) or a percentage
    of RAM (1-100 %). Anything else is refused before it reaches the profile."""
    m = _MEMORY_LIMIT_RE.match(str(value))
    if not m or float(m.group(1)) <= 0 or (m.group(2) == "%" and float(m.group(1)) > 100):
        raise ConfigError(
            f"--memory-limit {value!r}: expected a size such as 6GB, 512MiB or a share of RAM "
            "such as 50%"
        )
    return f"{m.group(1)}{m.group(2).upper() if m.group(2) != '%' else '%'}".replace("IB", "iB")


def parse_cache_dir() -> Path | None:
    """The parse cache folder, or None when RECSYS_EVAL_PARSE_CACHE=0."""
    if os.environ.get("RECSYS_EVAL_PARSE_CACHE", "1").strip() == "0":
        return None
    explicit = os.environ.get("RECSYS_EVAL_CACHE_DIR")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if explicit:
        base = Path(explicit)
    elif xdg:
        base = Path(xdg) / "recsys-eval"
    else:
        base = Path.home() / ".cache" / "recsys-eval"
    return base / "dbt-parse"


def parse_cache_entry(proj: Path, database: Path, dbt_vars: dict[str, Any]) -> Path | None:
    """This build's cache entry: one per (version, project, database path, vars)."""
    folder = parse_cache_dir()
    if folder is None:
        return None
    key = json.dumps(
        {
            "version": __version__,
            "project": str(proj.resolve()),
            "database": str(Path(database).resolve()),
            "vars": encode_vars(dbt_vars),
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return folder / hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def restore_parse_state(entry: Path | None, target_path: Path) -> None:
    """Copy a cached partial-parse state into the build's target folder (best effort)."""
    if entry is None:
        return
    cached = entry / PARTIAL_PARSE_FILE
    with contextlib.suppress(OSError):
        if cached.is_file():
            target_path.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, target_path / PARTIAL_PARSE_FILE)


def save_parse_state(entry: Path | None, target_path: Path) -> None:
    """Keep the build's partial-parse state for the next build (atomic, best effort).

    A cache that cannot be written (read-only home, full disk) only costs the next run a parse.
    """
    produced = target_path / PARTIAL_PARSE_FILE
    if entry is None or not produced.is_file():
        return
    with contextlib.suppress(OSError):
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(entry.parent, 0o700)
        entry.mkdir(exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=entry, prefix=".partial-parse-")
        try:
            with os.fdopen(fd, "wb") as out, produced.open("rb") as src:
                shutil.copyfileobj(src, out)
            os.replace(tmp, entry / PARTIAL_PARSE_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(entry.parent)


def _prune(folder: Path) -> None:
    entries = sorted(
        (p for p in folder.iterdir() if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[MAX_CACHE_ENTRIES:]:
        shutil.rmtree(old, ignore_errors=True)


def _read_results(path: Path) -> list[NodeResult]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or cut short by a full disk
        return []
    return [
        NodeResult(r["unique_id"], str(r["status"]), str(r.get("message") or ""))
        for r in data.get("results", [])
    ]


# dbt-duckdb reads its `path` as a URL ('#' starts a fragment, '?' a query) and quotes the file
# name into SQL without escaping (its schema listing), so such a database path would open the
# wrong file or break (or change) a statement.
_DBT_UNSAFE_PATH_CHARS = ("'", '"', "#", "?", "\\", "\n", "\r", "\0")


def check_database_path(database: Path, where: str = "--database") -> Path:
    """Refuse a run database path that dbt-duckdb cannot open as written, before any work."""
    text = str(database)
    bad = sorted({ch for ch in _DBT_UNSAFE_PATH_CHARS if ch in text})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        raise ConfigError(
            f"{where} {text!r}: dbt-duckdb cannot open a path holding {shown} (it reads the path "
            "as a URL and quotes the file name into SQL); choose a path without those characters"
        )
    return database
