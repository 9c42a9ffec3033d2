"""Auth, pure: key table, env keys, scopes, reward tokens, rate limits, the gate."""

from __future__ import annotations

import hashlib

import pytest

from banditroute import auth
from banditroute.auth import Gate, KeyTable, TokenBuckets
from banditroute.config import ConfigError

ROUTE_KEY, ADMIN_KEY = "k-route-0123456789", "k-admin-0123456789"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


KEYS = auth.parse_keys(
    [{"key_sha256": sha(ROUTE_KEY), "scopes": ["route", "reward"]}, {"key_sha256": sha(ADMIN_KEY), "scopes": ["admin"]}]
)


def test_key_table_matches_only_the_right_key() -> None:
    table = KeyTable(KEYS)
    assert table.lookup(ROUTE_KEY).scopes == {"route", "reward"}
    assert table.lookup(ADMIN_KEY).scopes == {"admin"}
    for wrong in (None, "", ROUTE_KEY + "x", ROUTE_KEY[:-1], sha(ROUTE_KEY)):
        assert table.lookup(wrong) is None
    assert table.lookup(ROUTE_KEY).key_id == sha(ROUTE_KEY)[:8]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"key_sha256": sha("a")}, "exactly key_sha256 and scopes"),
        ({"key_sha256": "abc", "scopes": ["route"]}, "64 lower-case hex"),
        ({"key_sha256": sha("a").upper(), "scopes": ["route"]}, "64 lower-case hex"),
        ({"key_sha256": sha("a"), "scopes": []}, "non-empty subset"),
        ({"key_sha256": sha("a"), "scopes": ["root"]}, "non-empty subset"),
        ({"key_sha256": sha("a"), "scopes": "route"}, "list of strings"),
        ({"key": "plain", "scopes": ["route"]}, "exactly key_sha256 and scopes"),
    ],
)
def test_bad_config_keys_are_refused_without_echoing_them(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        auth.parse_keys([raw])
    assert "plain" not in str(exc.value)


def test_env_keys_in_both_forms() -> None:
    pairs = auth.parse_env_keys(f"route,reward:{ROUTE_KEY}  admin:{ADMIN_KEY}")
    as_json = auth.parse_env_keys(
        f'[{{"key": "{ROUTE_KEY}", "scopes": ["route", "reward"]}},'
        f' {{"key_sha256": "{sha(ADMIN_KEY)}", "scopes": ["admin"]}}]'
    )
    assert pairs == as_json == KEYS
    assert auth.parse_env_keys("  ") == ()
    for bad in ("route", "route:", "root:abc", "[{]", '{"key": "x"}', '[{"key": "k", "scopes": ["x"]}]'):
        with pytest.raises(ConfigError):
            auth.parse_env_keys(bad)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic abc", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert auth.bearer_token(header) == token


def test_scopes_per_endpoint_deny_by_default() -> None:
    assert auth.required_scope("/healthz") is None
    assert auth.required_scope("/openapi.json") is None
    assert auth.required_scope("/dashboard") is None and auth.required_scope("/docs") is None  # static pages
    assert auth.required_scope("/route") == "route"
    assert auth.required_scope("/v1/chat/completions") == "route"
    assert auth.required_scope("/reward") == "reward"
    for path in ("/stats", "/metrics", "/dashboard/data", "/admin/reload", "/anything-new"):
        assert auth.required_scope(path) == "admin"


def test_loopback() -> None:
    assert all(auth.is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(auth.is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com"))


def test_reward_token_binds_event_and_tenant_and_secret() -> None:
    secret = b"s" * 32
    token = auth.reward_token(secret, "e1", "acme")
    assert len(token) == 64
    assert auth.verify_reward_token(secret, "e1", "acme", token)
    assert not auth.verify_reward_token(secret, "e2", "acme", token)
    assert not auth.verify_reward_token(secret, "e1", "other", token)
    assert not auth.verify_reward_token(secret, "e1", None, token)
    assert not auth.verify_reward_token(b"t" * 32, "e1", "acme", token)
    assert auth.reward_token(secret, "e1", None) != auth.reward_token(secret, "e1", "")


def test_token_bucket_refills_with_time() -> None:
    limiter = TokenBuckets(rate_per_s=10.0, burst_s=0.5, max_clients=100)  # 5 at once, 10/s
    assert [limiter.acquire("a", 0.0) for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("a", 0.0) == pytest.approx(0.1)
    assert limiter.acquire("b", 0.0) == 0.0  # buckets are per client
    assert limiter.acquire("a", 0.05) > 0  # half a token only
    assert limiter.acquire("a", 0.2) == 0.0
    assert TokenBuckets(0.0, 1.0, 10).acquire("a", 0.0) == 0.0  # 0: no limit


def test_rate_table_is_a_bounded_lru() -> None:
    limiter = TokenBuckets(rate_per_s=1.0, burst_s=1.0, max_clients=3)
    for client in "abcdef":
        limiter.acquire(client, 0.0)
    assert len(limiter) == 3
    assert limiter.acquire("f", 0.0) > 0  # still tracked: its bucket is empty
    assert limiter.acquire("a", 0.0) == 0.0  # dropped long ago: starts full


def test_gate() -> None:
    gate = Gate(KEYS, True, route_rate_per_s=1.0, reward_rate_per_s=100.0, burst_s=2.0, max_clients=10)
    bearer = f"Bearer {ROUTE_KEY}"
    assert gate.check("/healthz", None, 0.0).status == 0
    assert gate.check("/route", None, 0.0).status == 401
    assert gate.check("/route", "Bearer nope", 0.0).status == 401
    assert gate.check("/stats", bearer, 0.0).status == 403
    assert gate.check("/stats", f"Bearer {ADMIN_KEY}", 0.0).status == 0
    assert [gate.check("/route", bearer, 0.0).status for _ in range(3)] == [0, 0, 429]
    limited = gate.check("/route", bearer, 0.0)
    assert limited.retry_after_s == pytest.approx(1.0)
    assert gate.check("/reward", bearer, 0.0).status == 0  # each endpoint has its own bucket
    assert gate.check("/route", bearer, 1.0).status == 0
    assert Gate(KEYS, False, 1.0, 1.0, 1.0, 10).check("/stats", None, 0.0).status == 0


def test_operator_endpoints_need_an_admin_key_even_with_auth_off() -> None:
    open_gate = Gate(KEYS, False, 1.0, 1.0, 1.0, 10)
    assert open_gate.check("/route", None, 0.0).status == 0
    assert open_gate.check("/admin/weights", None, 0.0).code == "unauthorized"
    assert open_gate.check("/admin/weights", f"Bearer {ROUTE_KEY}", 0.0).code == "forbidden"
    assert open_gate.check("/admin/weights", f"Bearer {ADMIN_KEY}", 0.0).status == 0
    no_admin = Gate(KEYS[:1], False, 1.0, 1.0, 1.0, 10)
    assert no_admin.check("/admin/weights", f"Bearer {ADMIN_KEY}", 0.0).code == "admin_disabled"


def test_the_admin_key_from_config_or_environment() -> None:
    assert auth.admin_keys("", None) == ()
    from_env = auth.admin_keys("", ADMIN_KEY)
    from_config = auth.admin_keys(sha(ADMIN_KEY), "ignored-when-the-config-has-one")
    assert from_env == from_config == (auth.ApiKey(bytes.fromhex(sha(ADMIN_KEY)), frozenset({"admin"})),)
    with pytest.raises(ConfigError):
        auth.admin_keys("not-hex", None)
