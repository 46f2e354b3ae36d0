"""A throw-away PostgreSQL cluster for the SQL-source tests and benchmark.

`start_cluster()` runs Debian's server binaries (`/usr/lib/postgresql/<ver>/bin`, or
RECSYS_EVAL_PG_BIN, or `pg_ctl` on PATH) on a fresh data folder under /tmp: initdb with password
authentication (scram-sha-256) for every connection, the server listening on a unix socket only
(`-k <folder> -h ''`: no TCP port). initdb refuses to run as root, so as root the cluster runs as
the `postgres` system user (Debian's package creates it), else `nobody`, in a folder it owns.
`Cluster.stop()` stops the server and removes the folder. `scripts/setup_postgres` installs the
binaries when they are missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ADMIN = "recsys_admin"


def find_bin() -> Path | None:
    """The folder of initdb / pg_ctl / postgres, or None when they are not installed."""
    env = os.environ.get("RECSYS_EVAL_PG_BIN")
    candidates = [Path(env)] if env else []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates += [p / "bin" for p in versions]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


@dataclass
class Cluster:
    bin: Path
    folder: Path
    socket_dir: Path
    admin_password: str
    run_as: str | None  # the system user running the server (None: the current user)

    def dsn(self, user: str = ADMIN, password: str | None = None, dbname: str = "postgres") -> str:
        pw = self.admin_password if password is None else password
        return f"host={self.socket_dir} port=5432 dbname={dbname} user={user} password='{pw}'"

    def url(self, user: str, password: str, dbname: str = "postgres") -> str:
        """The same connection as a postgresql:// URL (socket folder in the host parameter)."""
        from urllib.parse import quote

        return (
            f"postgresql://{quote(user)}:{quote(password, safe='')}@/{dbname}"
            f"?host={quote(str(self.socket_dir))}&port=5432"
        )

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(self.dsn(dbname=dbname), autocommit=True)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _run(
                self.run_as,
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.folder / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                check=False,
            )
        shutil.rmtree(self.folder, ignore_errors=True)


def _run(user: str | None, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


def start_cluster() -> Cluster:
    """initdb + pg_ctl start on a fresh folder; raises RuntimeError with the server's log."""
    bin_dir = find_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found (run scripts/setup_postgres)")
    user = _server_user()
    # A short path: a unix socket path is limited to about 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="rse-pg-", dir="/tmp"))
    socket_dir = folder / "s"
    socket_dir.mkdir()
    password = "adm-" + secrets.token_hex(8)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o600)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (folder, socket_dir, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bin_dir, folder, socket_dir, password, user)
    data = folder / "data"
    try:
        _run(
            user,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                ADMIN,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )
        pwfile.unlink()
        _run(
            user,
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "server.log"),
                "-w",
                "-o",
                f"-k {socket_dir} -h '' -c fsync=off -c full_page_writes=off",
                "start",
            ],
        )
    except subprocess.CalledProcessError as exc:
        log = folder / "server.log"
        detail = (exc.stderr or exc.stdout or "").strip()
        if log.exists():
            detail += "\n" + log.read_text(errors="replace")[-2000:]
        cluster.stop()
        raise RuntimeError(f"could not start a PostgreSQL cluster: {detail}") from None
    except BaseException:
        cluster.stop()
        raise
    return cluster


_SHARED: list[Cluster] = []


def shared_cluster() -> Cluster:
    """One cluster per test session (process), started on first use and stopped at exit: the
    SQL-source and tabular-source tests each create their own database in it."""
    if not _SHARED:
        import atexit

        _SHARED.append(start_cluster())
        atexit.register(_SHARED[0].stop)
    return _SHARED[0]
