"""Temporary folders of `run` and `load`, cleaned up even when the process is stopped.

A `load` spills the validated rows of a file to a temporary folder (46-234 MB for 1M-10M
lines); a `run` keeps its throw-away database and dbt's logs in one. Three things make sure
they do not pile up in the temp dir:

- `install_signal_handlers()` (the CLI calls it) turns SIGTERM and SIGHUP into `Interrupted`, a
  KeyboardInterrupt, as Python already does for SIGINT: the `finally` blocks run, the folder is
  removed, the loader's transaction is rolled back and a dbt child process is killed (by
  `subprocess.run`, which kills its child on any exception).
- `create()` writes a marker file into each new folder with the owner's pid, the pid's start
  time (from /proc/<pid>/stat, so a reused pid is not mistaken for the owner) and the boot id.
- `create()` first sweeps stale folders: only folders named with this tool's prefixes, directly
  in the temp dir, owned by this user, never through a symbolic link, and only when the owner
  recorded in the marker is gone (no such pid, another start time or another boot). A folder
  without a complete marker (an older version's, one whose owner was killed between creating it
  and writing the marker, or one being created right now) is swept once it is older than
  UNMARKED_GRACE_SECONDS.
- The owner also holds an exclusive `flock` on the marker for as long as it lives (the kernel
  drops it when the process dies, even on SIGKILL). A folder whose marker is locked is never
  swept, whatever its pid says: a pid means nothing to a process in another PID namespace (two
  containers sharing one /tmp), a lock does.
A SIGKILL cannot be caught, so its folder stays until the next `run` or `load` starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from recsys_eval.errors import RecsysEvalError

RUN_PREFIX = "recsys-eval-run-"
LOAD_PREFIX = "recsys-eval-load-"
PREFIXES = (RUN_PREFIX, LOAD_PREFIX)
MARKER = ".recsys-eval-owner"
UNMARKED_GRACE_SECONDS = 24 * 3600
CAUGHT_SIGNALS = ("SIGTERM", "SIGHUP")
# The open, locked marker of each folder this process created (closed when the folder goes).
_held_locks: dict[Path, int] = {}


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that cleanup code runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot); '' when unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and ')'
    return fields[19] if len(fields) > 19 else ""


def owner_stamp(pid: int | None = None) -> str:
    """`pid start-time boot-id` of a process (this one by default), as written to the marker."""
    pid = os.getpid() if pid is None else pid
    return f"{pid} {process_start_time(pid) or '-'} {_boot_id() or '-'}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(stamp: str) -> bool:
    """Whether the process recorded in a marker still runs (same pid, start time and boot)."""
    parts = stamp.split()
    if len(parts) != 3 or not parts[0].isdigit():
        return False
    pid, started, boot = int(parts[0]), parts[1], parts[2]
    if boot != "-" and _boot_id() not in ("", boot):
        return False
    if not _pid_alive(pid):
        return False
    now = process_start_time(pid)
    return started == "-" or now == "" or now == started


def _read_marker(folder: int) -> tuple[str | None, bool]:
    """The marker's complete text (None when missing, not a file, or still being written: a
    marker ends with a newline) and whether a live process holds its lock; read relative to an
    open folder descriptor without following links."""
    try:
        fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None, False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            locked = True
        except OSError:
            locked = False  # a file system without flock: the pid check alone decides
        else:
            locked = False
            fcntl.flock(fd, fcntl.LOCK_UN)
        text = os.read(fd, 256).decode("ascii", "replace")
        return (text if text.endswith("\n") else None), locked
    finally:
        os.close(fd)


def _is_stale(entry: os.DirEntry[str], uid: int, now: float) -> bool:
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        return False  # a symbolic link, a file, or another user's folder
    try:
        fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        stamp, locked = _read_marker(fd)
    finally:
        os.close(fd)
    if locked:
        return False  # its owner is alive, whatever namespace its pid belongs to
    if stamp is None:
        return now - st.st_mtime > UNMARKED_GRACE_SECONDS
    return not owner_alive(stamp)


def sweep(base: str | Path | None = None) -> list[Path]:
    """Remove this user's stale folders of this tool in `base` (the temp dir by default);
    returns the folders removed. Never raises: a folder that cannot be removed is left."""
    base = Path(base or tempfile.gettempdir())
    uid, now = os.geteuid(), time.time()
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(base) if e.name.startswith(PREFIXES)]
    except OSError:
        return removed
    for entry in entries:
        if _is_stale(entry, uid, now):
            # rmtree refuses a symbolic link and removes with descriptors, never following one.
            with contextlib.suppress(OSError):
                shutil.rmtree(entry.path)
                removed.append(Path(entry.path))
    return removed


def create(prefix: str) -> Path:
    """A new private folder `<tempdir>/<prefix>XXXX` with its owner marker, after a sweep of
    stale folders. A temp dir that cannot take it (full, read-only) raises RecsysEvalError."""
    sweep()
    base = tempfile.gettempdir()
    try:
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    except OSError as exc:
        raise RecsysEvalError(
            f"cannot create a temporary folder in {base}: {exc.strerror or exc}; free space "
            "there or point TMPDIR at a writable disk with room"
        ) from None
    try:
        fd = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with contextlib.suppress(OSError):  # a file system without flock: pid check only
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, (owner_stamp() + "\n").encode("ascii"))
        except BaseException:
            os.close(fd)
            raise
        _forget_removed_folders()
        _held_locks[folder] = fd  # kept open (and locked) while this process lives
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RecsysEvalError(
            f"cannot create a temporary folder in {base}: {exc.strerror or exc}; free space "
            "there or point TMPDIR at a writable disk with room"
        ) from None
    return folder


@contextlib.contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """`create(prefix)`, removed on exit (also on an exception or a caught signal)."""
    folder = create(prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _forget_removed_folders()


def _forget_removed_folders() -> None:
    """Close the locked markers of folders that are gone (removed by their user)."""
    for folder in [f for f in _held_locks if not f.exists()]:
        with contextlib.suppress(OSError):
            os.close(_held_locks.pop(folder))


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    # Once: a second signal during the cleanup must not cut it short.
    for name in CAUGHT_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP raise `Interrupted` (main thread only; elsewhere a
    no-op; a signal already ignored, as under nohup, or handled stays so); the default handlers
    come back on exit."""
    saved: dict[int, Any] = {}
    try:
        for name in CAUGHT_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            current = signal.getsignal(signum)
            if current is not signal.SIG_DFL:
                continue  # ignored (nohup) or handled by the caller: left alone
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(signum, _raise_interrupted)
                saved[signum] = current
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
