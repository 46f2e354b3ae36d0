"""Run the project's dbt models in-process against a run database."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys_eval.errors import RecsysEvalError
from recsys_eval.paths import project_dir


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    status: str
    message: str


@contextmanager
def _env(overrides: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build(
    database: Path,
    dbt_vars: dict[str, Any],
    select: list[str],
    work_dir: Path,
) -> list[NodeResult]:
    """`dbt build --select ...` on the DuckDB target with the run's vars.

    dbt's own output is kept in `work_dir/logs`; a failed model or error-severity test raises
    RecsysEvalError naming the nodes. Warn-severity test results are returned to the caller.
    """
    from dbt.cli.main import dbtRunner  # slow import (~3 s): only when a run needs it

    proj = project_dir()
    args = [
        "build",
        "--project-dir",
        str(proj),
        "--profiles-dir",
        str(proj),
        "--target",
        "duckdb",
        "--target-path",
        str(work_dir / "dbt-target"),
        "--log-path",
        str(work_dir / "logs"),
        "--vars",
        json.dumps(dbt_vars),
        "--quiet",
        "--no-use-colors",
        "--select",
        *select,
    ]
    env = {
        "RECSYS_EVAL_DUCKDB_PATH": str(database),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    with _env(env):
        result = dbtRunner().invoke(args)
    nodes: list[NodeResult] = []
    if result.result is not None and hasattr(result.result, "results"):
        for r in result.result.results:
            nodes.append(NodeResult(r.node.unique_id, str(r.status), str(r.message or "")))
    failed = [n for n in nodes if n.status in ("error", "fail", "runtime error")]
    if failed or not result.success:
        detail = "; ".join(f"{n.unique_id}: {n.status} {n.message}".strip() for n in failed)
        if not detail and result.exception is not None:
            detail = str(result.exception)
        raise RecsysEvalError(
            f"dbt build failed: {detail or 'see ' + str(work_dir / 'logs' / 'dbt.log')}"
        )
    return nodes
