"""DuckDB connection helper for the warehouse file.

A database holds raw rows, possibly personal data, and quarantined raw lines, so every file this
tool creates for it is private (0600, like the reports): `connect` creates a new database under
umask 077 and `private_files()` keeps that umask while the CLI works on a database, so that the
write-ahead log (`<db>.wal`, created and removed by DuckDB as it goes) is private too. dbt's child
process gets the same umask (see dbt_runner). An existing database keeps its mode.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb

from recsys_eval.errors import DatabaseLockedError, RecsysEvalError

_PID_RE = re.compile(r"\(PID (\d+)\)")
PRIVATE_UMASK = 0o077
LOCK_MARKERS = ("Could not set lock on file", "Conflicting lock")


def locked_error(db_path: str | Path, message: str) -> DatabaseLockedError | None:
    """The one-line error for DuckDB's lock failure in `message` (None when it is another
    failure): `database DB is locked by another run (pid N)`."""
    if not any(marker in message for marker in LOCK_MARKERS):
        return None
    match = _PID_RE.search(message)
    pid = f"pid {match.group(1)}" if match else "pid unknown"
    return DatabaseLockedError(f"database {db_path} is locked by another run ({pid})")


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Within the block new files (a database, its WAL, dbt's files) are created 0600 / 0700."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def connect(db_path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (or create) a DuckDB database file with the project's session settings.

    The progress bar is off (DuckDB prints it to stderr even without a TTY). A file held by
    another process raises DatabaseLockedError naming that process. A new file is created 0600.
    """
    path = Path(db_path)
    memory = str(db_path) == ":memory:"
    if not memory:
        parent = path.parent
        if not parent.exists():
            raise RecsysEvalError(f"database folder does not exist: {parent}")
    created = not memory and not os.path.lexists(path)
    try:
        with private_files() if created else contextlib.nullcontext():
            con = duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.IOException as exc:
        message = str(exc)
        locked = locked_error(db_path, message)
        if locked is not None:
            raise locked from exc
        raise RecsysEvalError(f"cannot open database {db_path}: {message}") from exc
    except duckdb.Error as exc:
        raise RecsysEvalError(f"cannot open database {db_path}: {exc}") from exc
    if created:
        for name in (path, Path(f"{path}.wal")):
            with contextlib.suppress(OSError):
                os.chmod(name, 0o600)
    try:
        con.execute("set enable_progress_bar = false")
    except BaseException:
        con.close()
        raise
    return con
