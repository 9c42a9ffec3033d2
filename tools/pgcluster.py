"""A throwaway PostgreSQL cluster on loopback, for the tests and the benchmark: `initdb` and `pg_ctl`
in a temporary directory, on a free port, gone at `stop()`.

Debian's `postgresql` package (`make postgres` installs it) puts the programs under
/usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as root, so as root the cluster runs
as the `postgres` user the package creates, in a directory handed to it.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

_START_TIMEOUT_S = 60
_names = itertools.count()


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def unavailable() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    try:
        import psycopg  # noqa: F401 (the postgres extra: `make setup` installs it)
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if _bin_dir() is None:
        return "PostgreSQL is not installed (`make postgres` installs Debian's package; it needs root and apt)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run PostgreSQL as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One cluster; `url(db)` for a database in it, `create_database()` for a fresh one."""

    def __init__(self, *, settings: dict[str, str] | None = None):
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError(unavailable() or "PostgreSQL is not installed")
        self.bin = bin_dir
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="banditroute-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.settings = {"max_connections": "200", "shared_buffers": "64MB", **(settings or {})}
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=_START_TIMEOUT_S)

    def start(self) -> PostgresCluster:
        if not self.data.exists():
            # --no-sync: the cluster is thrown away; what it commits later is fsynced as usual.
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.pg_ctl("start", "-w", "-t", str(_START_TIMEOUT_S))
        return self

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = " ".join(
            [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1"]
            + [f"-c {k}={v}" for k, v in self.settings.items()]
        )
        args = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-o", options]
        self._run(*args, action, *extra)

    def restart(self) -> None:
        """`pg_ctl restart` (fast shutdown: open sessions are cut, committed work is kept)."""
        self.pg_ctl("restart", "-m", "fast", "-w", "-t", str(_START_TIMEOUT_S))

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists():
            with contextlib.suppress(subprocess.CalledProcessError):  # not running
                self.pg_ctl("stop", "-m", mode, "-w")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        import psycopg  # the postgres extra; only when a cluster is used

        name = name or f"banditroute_{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)
