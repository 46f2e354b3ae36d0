"""DuckDB connection helper for the warehouse file."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from recsys_eval.errors import DatabaseLockedError, RecsysEvalError

_PID_RE = re.compile(r"\(PID (\d+)\)")


def connect(db_path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (or create) a DuckDB database file with the project's session settings.

    The progress bar is off (DuckDB prints it to stderr even without a TTY). A file held by
    another process raises DatabaseLockedError naming that process.
    """
    path = Path(db_path)
    if str(db_path) != ":memory:":
        parent = path.parent
        if not parent.exists():
            raise RecsysEvalError(f"database folder does not exist: {parent}")
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.IOException as exc:
        message = str(exc)
        if "Could not set lock on file" in message:
            match = _PID_RE.search(message)
            pid = f"pid {match.group(1)}" if match else "pid unknown"
            raise DatabaseLockedError(
                f"database {db_path} is locked by another run ({pid})"
            ) from exc
        raise RecsysEvalError(f"cannot open database {db_path}: {message}") from exc
    except duckdb.Error as exc:
        raise RecsysEvalError(f"cannot open database {db_path}: {exc}") from exc
    try:
        con.execute("set enable_progress_bar = false")
    except BaseException:
        con.close()
        raise
    return con
