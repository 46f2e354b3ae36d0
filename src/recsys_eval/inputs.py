"""Input paths: only regular, readable data files are read.

A dataset path comes from a YAML file that may not be the user's own, and `load --input` from
the command line. Reading a FIFO or a device (/dev/zero) would block or never end, a directory
cannot be read, and a kernel pseudo-file (/proc/self/environ, /sys/...) holds the process's
environment or kernel state rather than logs: it would land in the database and quarantine. So
such paths are refused before anything is loaded, with the path and what to do.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from recsys_eval.errors import RecsysEvalError

PSEUDO_FILE_SYSTEMS = ("/proc", "/sys")
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def check_input_file(path: str | Path, where: str = "input") -> Path:
    """`path` if it is a regular file this process can open for reading; otherwise raises
    RecsysEvalError `<where>: <path>: <what is wrong>; <what to do>`. Symbolic links to regular
    files are followed."""
    path = Path(path)
    hint = "give the path of a JSONL file"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RecsysEvalError(f"{where}: {path}: file not found") from None
    except OSError as exc:
        raise RecsysEvalError(f"{where}: {path}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise RecsysEvalError(f"{where}: {path}: is a directory, not a file; {hint}")
    if not stat.S_ISREG(st.st_mode):
        raise RecsysEvalError(
            f"{where}: {path}: is {_kind(st.st_mode)}, not a regular file; {hint} (pipes and "
            "devices are never read)"
        )
    real = os.path.realpath(path)
    for root in PSEUDO_FILE_SYSTEMS:
        if real == root or real.startswith(root + "/"):
            raise RecsysEvalError(
                f"{where}: {path}: is a kernel pseudo-file under {root}, not a data file; {hint}"
            )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise RecsysEvalError(
            f"{where}: {path}: cannot be opened for reading ({exc.strerror or exc}); check its "
            "permissions"
        ) from None
    os.close(fd)
    return path
