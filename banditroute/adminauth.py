"""The admin key: who may change the router at run time. Pure (the environment is passed in).

The key comes from `admin.key_sha256` (the hex SHA-256 of the key, so the file holds no secret)
or, when that is empty, from the environment variable BANDITROUTE_ADMIN_KEY. With neither, every
admin endpoint answers 403 `admin_disabled`. A request presents `Authorization: Bearer <key>`;
the SHA-256 of what it presents is compared in constant time, and a refusal never says how close
a guess was.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from banditroute.api import ApiError
from banditroute.config import AdminConfig

ENV_KEY = "BANDITROUTE_ADMIN_KEY"
_SCHEME = "bearer "


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AdminKey:
    def __init__(self, digest: str | None):
        self._digest = bytes.fromhex(digest) if digest else None

    @classmethod
    def from_config(cls, config: AdminConfig, environ: Mapping[str, str]) -> AdminKey:
        if config.key_sha256:
            return cls(config.key_sha256)
        key = environ.get(ENV_KEY, "")
        return cls(key_digest(key) if key else None)

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    def check(self, authorization: str | None) -> None:
        """Returns when the header carries the admin key; raises ApiError (401/403) otherwise."""
        if self._digest is None:
            raise ApiError(403, "admin_disabled",
                           f"admin endpoints are disabled: set admin.key_sha256 or {ENV_KEY} to enable them")
        if not authorization or not authorization.lower().startswith(_SCHEME):
            raise ApiError(401, "unauthorized", "send the admin key as 'Authorization: Bearer <key>'")
        presented = hashlib.sha256(authorization[len(_SCHEME):].strip().encode()).digest()
        if not hmac.compare_digest(presented, self._digest):
            raise ApiError(403, "forbidden", "the admin key is not valid")
