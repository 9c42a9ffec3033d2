"""The data directory: where one router keeps its log, its locks and its reward secret.

Every process of one router (the service, its serving processes and learner, the judge worker)
finds these files through this module, so their names have one home.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any

import structlog

from banditroute.config import ConfigError

log = structlog.get_logger("banditroute")

DB_NAME = "banditroute.db"  # the SQLite log (store/sqlite.py); its writer lock is DB_NAME + ".lock"
SECRET_NAME = "reward_secret"  # the key of the reward tokens, 0600
SECRET_ENV = "BANDITROUTE_SECRET"  # the same key from the environment instead of the file
LEARNER_LOCK_NAME = "learner.lock"  # held by the one process that learns from the log; holds its pid
_LOCK_POLL_S = 0.1
# Below this much free space the log's file system counts as full: a commit would soon fail.
MIN_FREE_BYTES = 1 << 20
_SECRET_BYTES = 32
_SECRET_MIN_CHARS = 16


def db_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / DB_NAME


def secret_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / SECRET_NAME


def has_room(data_dir: str | Path) -> bool:
    """Whether the data directory's file system has `MIN_FREE_BYTES` free for unprivileged writes."""
    try:
        usage = os.statvfs(data_dir)
    except OSError:
        return False
    return usage.f_bavail * usage.f_frsize >= MIN_FREE_BYTES


def load_or_create_secret(path: Path, environ: Any = os.environ) -> bytes:
    """The reward-token secret: env BANDITROUTE_SECRET, else a random one kept in `path` (0600).

    Kept on disk so tokens handed out before a restart stay valid after it. Created whole or not at
    all: written and synced under a temporary name, then linked to `path`, which fails if another
    process got there first; then that one's secret is read. A reader never sees a partial file.
    """
    from_env = environ.get(SECRET_ENV)
    if from_env is not None:
        if len(from_env) < _SECRET_MIN_CHARS:
            raise ConfigError(f"{SECRET_ENV} must be at least {_SECRET_MIN_CHARS} characters")
        return from_env.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_secret(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("secret_file_permissions", path=str(path), mode=oct(mode), expected="0o600")
    try:
        value = bytes.fromhex(path.read_text().strip())
    except ValueError:
        value = b""
    if len(value) < _SECRET_BYTES:
        raise ConfigError(f"{path} does not hold a {_SECRET_BYTES}-byte hex secret")
    return value


def _create_secret(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_bytes(_SECRET_BYTES).hex())
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process created it first: theirs holds
            os.link(temporary, path)
            _sync_dir(path.parent)
    finally:
        os.unlink(temporary)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LearnerRunning(RuntimeError):
    """Another process already learns from this log: two learners would learn every join twice."""


class LearnerLock:
    """An exclusive `flock` on `learner.lock` in the data directory, held for the learner's life.

    The kernel releases it when its holder dies, kill -9 included, so a crash never leaves it stale.
    The file holds the holder's pid, for the error message only.
    """

    def __init__(self, fd: int, path: Path):
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, data_dir: str | Path, wait_s: float = 0.0) -> LearnerLock:
        """Take the lock, waiting up to `wait_s` for a holder to stop; raises LearnerRunning if it does not."""
        path = Path(data_dir) / LEARNER_LOCK_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise LearnerRunning(
                        f"another process (pid {holder}) already learns from the log in {path.parent}:"
                        " stop it first (one learner per log; see docs/reliability.md)"
                    ) from None
                time.sleep(_LOCK_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None
