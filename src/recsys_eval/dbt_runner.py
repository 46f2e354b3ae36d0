"""Run the project's dbt models against a run database, in a child process.

A child process keeps dbt's global state and dbt-duckdb's open database handle out of the
caller: when it exits, the DuckDB file is released and the caller can read the marts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys_eval.errors import RecsysEvalError
from recsys_eval.paths import project_dir

_DBT_MAIN = "import sys; from dbt.cli.main import cli; sys.exit(cli())"


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    status: str
    message: str


def build(
    database: Path,
    dbt_vars: dict[str, Any],
    select: list[str],
    work_dir: Path,
) -> list[NodeResult]:
    """`dbt build --select ...` on the DuckDB target with the run's vars.

    dbt's log goes to `work_dir/logs`. A failed model or error-severity test raises
    RecsysEvalError naming the nodes; the node results (warnings included) are returned.
    """
    proj = project_dir()
    target_path = work_dir / "dbt-target"
    args = [
        "build",
        "--project-dir", str(proj),
        "--profiles-dir", str(proj),
        "--target", "duckdb",
        "--target-path", str(target_path),
        "--log-path", str(work_dir / "logs"),
        "--vars", json.dumps(dbt_vars, ensure_ascii=False),  # YAML refuses surrogate escapes
        "--quiet",
        "--no-use-colors",
        "--select", *select,
    ]  # fmt: skip
    env = {
        **os.environ,
        "RECSYS_EVAL_DUCKDB_PATH": str(database),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _DBT_MAIN, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    nodes = _read_results(target_path / "run_results.json")
    failed = [n for n in nodes if n.status in ("error", "fail", "runtime error")]
    if failed or proc.returncode != 0:
        detail = "; ".join(f"{n.unique_id}: {n.status} {n.message}".strip() for n in failed)
        if not detail:
            detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RecsysEvalError(f"dbt build failed: {detail}")
    return nodes


def _read_results(path: Path) -> list[NodeResult]:
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [
        NodeResult(r["unique_id"], str(r["status"]), str(r.get("message") or ""))
        for r in data.get("results", [])
    ]
