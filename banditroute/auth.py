"""Who may call what: API keys with scopes, reward tokens, rate limits. Pure: time is passed in.

- Keys are kept only as SHA-256 digests, checked like the config file's `[auth].keys`
  (config/records.py) wherever they come from. A presented key is hashed once and compared with every
  stored digest through `hmac.compare_digest` (no early exit), so timing says nothing about keys.
- A reward token is an HMAC-SHA256, under the server's secret, over an event id and its tenant:
  only whoever received a decision can send feedback for it.
- Rate limits are token buckets per key, in a bounded LRU table.
- Operator endpoints (`/admin/...`) always need an `admin` key, even when auth is otherwise off
  (a loopback development server); with no admin key configured they are disabled (403).

server.py turns a `Admission` into an HTTP answer; nothing here knows HTTP or the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from banditroute.config import AuthConfig, ConfigError
from banditroute.config.records import api_key, parse_keys
from banditroute.types import ApiKey

# Public: health and the static pages (the dashboard page holds no data; /dashboard/data does).
PUBLIC_PATHS = frozenset({"/", "/healthz", "/openapi.json", "/docs", "/dashboard"})
ADMIN_PREFIX = "/admin/"
ADMIN_KEY_ENV = "BANDITROUTE_ADMIN_KEY"
ADMIN_DISABLED = (
    f"admin endpoints are disabled: set admin.key_sha256 or {ADMIN_KEY_ENV}, or an [auth] key "
    "with scope admin, to enable them"
)
_TOKEN_DOMAIN = b"banditroute-reward-token-v1"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def admin_keys(key_sha256: str, env_key: str | None) -> tuple[ApiKey, ...]:
    """The `[admin]` key: `admin.key_sha256`, else the key in BANDITROUTE_ADMIN_KEY; scope `admin`."""
    if key_sha256:
        return (api_key(key_sha256, ["admin"], "admin.key_sha256"),)
    if env_key:
        return (ApiKey(hash_key(env_key), frozenset({"admin"})),)
    return ()


def parse_env_keys(text: str, source: str = "BANDITROUTE_API_KEYS") -> tuple[ApiKey, ...]:
    """Keys from the environment, in one of two forms.

    JSON: `[{"key": "...", "scopes": ["route"]}, {"key_sha256": "...", "scopes": ["admin"]}]`.
    Pairs: whitespace-separated `scopes:key`, scopes joined by commas: `route,reward:k1 admin:k2`.
    """
    text = text.strip()
    if not text:
        return ()
    if text.startswith("["):
        try:
            entries = json.loads(text)
        except ValueError:
            raise ConfigError(f"{source}: not valid JSON") from None
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: the JSON form must be a list")
        raw = []
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("key"), str) and entry["key"]:
                entry = {"key_sha256": hash_key(entry.pop("key")).hex(), **entry}
            raw.append(entry)
        return parse_keys(raw, source)
    out = []
    for i, pair in enumerate(text.split()):
        scopes, sep, key = pair.partition(":")
        if not sep or not key:
            raise ConfigError(f"{source}: entry {i} must look like scope[,scope]:key")
        out.append(api_key(hash_key(key).hex(), scopes.split(","), f"{source}: entry {i}"))
    return tuple(out)


class KeyTable:
    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[ApiKey]):
        self._keys = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, presented: str | None) -> ApiKey | None:
        """The key entry matching `presented`, comparing against every entry in constant time."""
        if not presented:
            return None
        digest = hash_key(presented)
        found = None
        for key in self._keys:
            if hmac.compare_digest(key.key_sha256, digest):
                found = key
        return found


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def required_scope(path: str) -> str | None:
    """The scope an endpoint needs; None for the public ones. Anything not listed needs `admin`."""
    if path in PUBLIC_PATHS:
        return None
    if path in ("/route", "/models") or path.startswith("/v1/"):
        return "route"
    if path == "/reward":
        return "reward"
    return "admin"


def auth_enabled(settings: AuthConfig, host: str) -> bool:
    """Whether API keys are required: `auth.mode`, where "auto" means on unless the server binds a
    loopback address with no key set (a development server)."""
    if settings.mode == "auto":
        return bool(settings.keys) or not is_loopback(host)
    return settings.mode == "on"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- reward tokens ----------------------------------------------------------------------------


def reward_token(secret: bytes, event_id: str, tenant: str | None) -> str:
    """HMAC-SHA256 over the event id and tenant; hex. A missing tenant differs from an empty one."""
    tenant_part = b"\x00" if tenant is None else b"\x01" + tenant.encode()
    message = _TOKEN_DOMAIN + b"\x00" + event_id.encode() + b"\x00" + tenant_part
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_reward_token(secret: bytes, event_id: str, tenant: str | None, token: str) -> bool:
    return hmac.compare_digest(reward_token(secret, event_id, tenant).encode(), token.encode())


# -- rate limits ------------------------------------------------------------------------------


class TokenBuckets:
    """Token buckets per client: `rate_per_s` sustained, `rate_per_s * burst_s` at once.

    At most `max_clients` buckets are kept; the least recently used is dropped first (a dropped
    client starts again with a full bucket). `rate_per_s = 0` means no limit.
    """

    __slots__ = ("rate", "capacity", "max_clients", "_buckets")

    def __init__(self, rate_per_s: float, burst_s: float, max_clients: int):
        self.rate = rate_per_s
        self.capacity = max(rate_per_s * burst_s, 1.0)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, client: str, now: float) -> float:
        """Take one token: 0.0 when admitted, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        tokens, at = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + max(0.0, now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


# -- the gate ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admission:
    status: int  # 0: let through
    code: str = ""
    message: str = ""
    retry_after_s: float = 0.0
    key_id: str | None = None


ALLOW = Admission(0)


class Gate:
    """Authentication, scope and rate limit for one request, from its path and Authorization header."""

    def __init__(
        self,
        keys: Iterable[ApiKey],
        enabled: bool,
        route_rate_per_s: float,
        reward_rate_per_s: float,
        burst_s: float,
        max_clients: int,
    ):
        keys = tuple(keys)
        self.enabled = enabled
        self.keys = KeyTable(keys)
        self.admin_enabled = any("admin" in k.scopes for k in keys)
        self.limits = {
            "route": TokenBuckets(route_rate_per_s, burst_s, max_clients),
            "reward": TokenBuckets(reward_rate_per_s, burst_s, max_clients),
        }

    def check(self, path: str, authorization: str | None, now: float) -> Admission:
        scope = required_scope(path)
        if scope is None:
            return ALLOW
        operator = path.startswith(ADMIN_PREFIX)
        if not (self.enabled or operator):
            return ALLOW
        if operator and not self.admin_enabled:
            return Admission(403, "admin_disabled", ADMIN_DISABLED)
        key = self.keys.lookup(bearer_token(authorization))
        if key is None:
            return Admission(401, "unauthorized", "a valid API key is required (Authorization: Bearer KEY)")
        if scope not in key.scopes:
            return Admission(403, "forbidden", "this API key may not call this endpoint", key_id=key.key_id)
        limiter = self.limits.get(scope)
        wait = limiter.acquire(key.key_id, now) if limiter is not None else 0.0
        if wait > 0:
            return Admission(
                429,
                "rate_limited",
                f"too many {scope} requests for this API key; retry later",
                retry_after_s=wait,
                key_id=key.key_id,
            )
        return Admission(0, key_id=key.key_id)
