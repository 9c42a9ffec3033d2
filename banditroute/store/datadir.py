"""The data directory: where one router keeps its log, its lock and its reward secret.

Every process of one router (the service, its serving processes and learner, the judge worker)
finds these files through this module, so their names have one home.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any

import structlog

from banditroute.config import ConfigError

log = structlog.get_logger("banditroute")

DB_NAME = "banditroute.db"  # the SQLite log (store/sqlite.py); its writer lock is DB_NAME + ".lock"
SECRET_NAME = "reward_secret"  # the key of the reward tokens, 0600
SECRET_ENV = "BANDITROUTE_SECRET"  # the same key from the environment instead of the file
_SECRET_BYTES = 32
_SECRET_MIN_CHARS = 16


def db_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / DB_NAME


def secret_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / SECRET_NAME


def load_or_create_secret(path: Path, environ: Any = os.environ) -> bytes:
    """The reward-token secret: env BANDITROUTE_SECRET, else a random one kept in `path` (0600).

    Kept on disk so tokens handed out before a restart stay valid after it.
    """
    from_env = environ.get(SECRET_ENV)
    if from_env is not None:
        if len(from_env) < _SECRET_MIN_CHARS:
            raise ConfigError(f"{SECRET_ENV} must be at least {_SECRET_MIN_CHARS} characters")
        return from_env.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("secret_file_permissions", path=str(path), mode=oct(mode), expected="0o600")
        value = bytes.fromhex(path.read_text().strip())
        if len(value) < _SECRET_BYTES:
            raise ConfigError(f"{path} does not hold a {_SECRET_BYTES}-byte hex secret") from None
        return value
    value = secrets.token_bytes(_SECRET_BYTES)
    with os.fdopen(fd, "w") as f:
        f.write(value.hex())
        f.flush()
        os.fsync(f.fileno())
    return value
