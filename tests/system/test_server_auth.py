"""Auth on a real server on loopback: keys and scopes, reward tokens, rate limits, no secret leaks."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import structlog

from banditroute.auth import auth_enabled, parse_keys
from banditroute.config import Config, ConfigError
from banditroute.http.app import create_app
from banditroute.store.datadir import SECRET_ENV, load_or_create_secret
from feedback.judge import JUDGE_KEY_ENV
from tests.api.test_judge import JUDGE, judge_config, run_judge
from tests.api.test_proxy import proxy_config, system_parts
from tests.conftest import ROOT, Api, make_config, start_api, stop_api
from tests.support.fake_upstream import Behaviour, FakeUpstream

ROUTER_KEY = "router-key-7f3a9c1d2e"  # route + reward
ROUTE_ONLY_KEY = "route-only-key-55aa11"
ADMIN_KEY = "admin-key-0be9d4c8a1"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


KEYS = parse_keys(
    [
        {"key_sha256": sha(ROUTER_KEY), "scopes": ["route", "reward"]},
        {"key_sha256": sha(ROUTE_ONLY_KEY), "scopes": ["route"]},
        {"key_sha256": sha(ADMIN_KEY), "scopes": ["admin"]},
    ]
)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def auth_config(tmp_path: Path, **auth: object) -> Config:
    return make_config(tmp_path, auth={"mode": "on", "keys": KEYS, **auth}, reward={"max_parts_per_event": 3})


async def stored(api: Api) -> dict[str, int]:
    return await api.service.eventlog.call(api.service.store.counts)


async def test_keys_and_scopes(tmp_path: Path) -> None:
    api = await start_api(auth_config(tmp_path))
    try:
        q = {"query": "hello"}
        missing = await api.post("/route", q)
        wrong = await api.post("/route", q, headers=bearer("guess"))
        assert missing == wrong == (401, {"error": {"code": "unauthorized", "message": missing[1]["error"]["message"]}})
        async with api.session.post(api.server.make_url("/route"), json=q) as resp:
            assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert (await api.post("/reward", {"event_id": "e", "quality": 1}, headers=bearer(ROUTE_ONLY_KEY)))[0] == 403
        assert (await api.get("/stats", headers=bearer(ROUTER_KEY)))[0] == 403
        assert (await api.post("/route", q, headers=bearer(ADMIN_KEY)))[0] == 403
        assert (await api.get("/healthz"))[0] == 200
        assert (await stored(api))["decisions"] == 0  # refused requests store nothing
        assert (await api.post("/route", q, headers=bearer(ROUTE_ONLY_KEY)))[0] == 200
        status, stats = await api.get("/stats", headers=bearer(ADMIN_KEY))
        assert status == 200 and stats["decisions"] == 1 and stats["auth"] == "on"
    finally:
        await stop_api(api)


async def test_reward_needs_the_token_of_its_decision(tmp_path: Path) -> None:
    api = await start_api(auth_config(tmp_path))
    h = bearer(ROUTER_KEY)
    try:
        _, a = await api.post("/route", {"query": "first", "metadata": {"tenant": "acme"}}, headers=h)
        _, b = await api.post("/route", {"query": "second", "metadata": {"tenant": "acme"}}, headers=h)
        part = {"event_id": a["event_id"], "latency_ms": 10}
        assert (await api.post("/reward", part, headers=h))[1]["error"]["code"] == "reward_token_required"
        status, body = await api.post("/reward", {**part, "reward_token": b["reward_token"]}, headers=h)
        assert (status, body["error"]["code"]) == (403, "invalid_reward_token")
        status, body = await api.post("/reward", {**part, "reward_token": "not-a-token"}, headers=h)
        assert (status, body["error"]["code"]) == (400, "invalid_reward_token")
        assert (await stored(api))["feedback_parts"] == 0
        ok = {**part, "reward_token": a["reward_token"]}
        assert [(await api.post("/reward", ok, headers=h))[0] for _ in range(4)] == [202, 202, 202, 409]
        # A finished event: late parts are still checked against the token and the parts bound.
        done = {"event_id": b["event_id"], "quality": 1.0, "cost_usd": 0.001, "reward_token": b["reward_token"]}
        status, body = await api.post("/reward", done, headers=h)
        assert (status, body["status"]) == (202, "learned")
        assert (await api.post("/reward", {**done, "reward_token": a["reward_token"]}, headers=h))[0] == 403
        assert [(await api.post("/reward", done, headers=h))[0] for _ in range(3)] == [202, 202, 409]
        assert (await stored(api))["feedback_parts"] == 6
    finally:
        await stop_api(api)


async def test_tokens_survive_a_restart(tmp_path: Path) -> None:
    config = auth_config(tmp_path)
    api = await start_api(config)
    _, d = await api.post("/route", {"query": "kept"}, headers=bearer(ROUTER_KEY))
    await stop_api(api)
    secret_file = tmp_path / "var" / "reward_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    api = await start_api(config)
    try:
        status, _ = await api.post(
            "/reward",
            {"event_id": d["event_id"], "quality": 0.5, "reward_token": d["reward_token"]},
            headers=bearer(ROUTER_KEY),
        )
        assert status == 202
    finally:
        await stop_api(api)


def test_secret_from_environment(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "s", {SECRET_ENV: "x" * 20}) == b"x" * 20
    assert not (tmp_path / "s").exists()
    with pytest.raises(ConfigError):
        load_or_create_secret(tmp_path / "s", {SECRET_ENV: "short"})
    made = load_or_create_secret(tmp_path / "s", {})
    assert load_or_create_secret(tmp_path / "s", {}) == made and len(made) == 32


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    api = await start_api(auth_config(tmp_path, route_rate_per_s=2.0, rate_burst_s=1.0))
    try:
        statuses = []
        for _ in range(3):
            async with api.session.post(
                api.server.make_url("/route"), json={"query": "hi"}, headers=bearer(ROUTER_KEY)
            ) as resp:
                statuses.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
                body = await resp.json()
        assert statuses == [200, 200, 429]
        assert body["error"]["code"] == "rate_limited" and int(retry_after) >= 1
        assert (await api.post("/route", {"query": "hi"}, headers=bearer(ROUTE_ONLY_KEY)))[0] == 200  # per key
        assert (await stored(api))["decisions"] == 3
    finally:
        await stop_api(api)


async def test_secrets_never_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_SECRET_KEY", "sk-upstream-very-secret")
    monkeypatch.setenv("BANDITROUTE_ADMIN_KEY", "env-admin-key-93ab")
    api = await start_api(auth_config(tmp_path))
    try:
        secret_hex = api.service.secret.hex()
        with structlog.testing.capture_logs() as logs:
            texts = []
            for key in ("wrong-" + ROUTER_KEY, ROUTER_KEY, ADMIN_KEY, "env-admin-key-93ab"):
                for path in (
                    "/route",
                    "/reward",
                    "/stats",
                    "/models",
                    "/metrics",
                    "/dashboard/data",
                    "/admin/settings",
                    "/admin/policy",
                    "/v1/models",
                    "/openapi.json",
                    "/nope",
                ):
                    async with api.session.post(
                        api.server.make_url(path), json={"query": ROUTER_KEY}, headers=bearer(key)
                    ) as resp:
                        texts.append(await resp.text())
                    async with api.session.get(api.server.make_url(path), headers=bearer(key)) as resp:
                        texts.append(await resp.text())
        assert any(entry["event"] == "decision" for entry in logs)
        everything = "\n".join(texts) + repr(logs)
        assert any('"cost_weight"' in t for t in texts)  # the admin answers were read, not refused
        for secret in (
            ROUTER_KEY,
            ADMIN_KEY,
            sha(ROUTER_KEY),
            secret_hex,
            "sk-upstream-very-secret",
            "env-admin-key-93ab",
            sha("env-admin-key-93ab"),
            sha(ADMIN_KEY),
        ):
            assert secret not in everything.replace(f'"query": "{ROUTER_KEY}"', "")
    finally:
        await stop_api(api)


def test_auth_is_on_off_loopback_and_refuses_to_run_without_keys(tmp_path: Path) -> None:
    open_loopback = make_config(tmp_path)
    assert not auth_enabled(open_loopback.auth, open_loopback.server.host)
    public = make_config(tmp_path, server={"host": "0.0.0.0"})
    assert auth_enabled(public.auth, "0.0.0.0")
    with pytest.raises(ConfigError, match="no API key is set"):
        create_app(public)
    with_keys = make_config(tmp_path, server={"host": "0.0.0.0"}, auth={"keys": KEYS})
    create_app(with_keys)
    env = {k: v for k, v in os.environ.items() if k != "BANDITROUTE_API_KEYS"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "banditroute.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "var"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "no API key is set" in proc.stderr


async def test_the_proxy_needs_a_route_key_and_hands_out_reward_tokens(tmp_path: Path) -> None:
    fake = FakeUpstream()
    await fake.start()
    config = dataclasses.replace(proxy_config(tmp_path, fake.base_url), auth=auth_config(tmp_path).auth)
    api = await start_api(config)
    try:
        url = str(api.server.make_url("/v1"))
        anonymous = openai.AsyncOpenAI(base_url=url, api_key="not-a-key", max_retries=0)
        client = openai.AsyncOpenAI(base_url=url, api_key=ROUTER_KEY, max_retries=0)  # sent as Bearer
        messages = [{"role": "user", "content": "what is six times seven"}]
        with pytest.raises(openai.AuthenticationError):
            await anonymous.chat.completions.create(model="auto", messages=messages)
        raw = await client.chat.completions.with_raw_response.create(model="auto", messages=messages)
        event_id, token = raw.headers["x-banditroute-event-id"], raw.headers["x-banditroute-reward-token"]
        await system_parts(api, event_id)  # the proxy's own measurement passed the token check
        status, answer = await api.post(
            "/reward", {"event_id": event_id, "quality": 1.0, "reward_token": token}, headers=bearer(ROUTER_KEY)
        )
        assert (status, answer["status"]) == (202, "learned")
        await anonymous.close()
        await client.close()
    finally:
        await stop_api(api)
        await fake.close()


async def test_the_judge_worker_signs_its_rewards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeUpstream()
    await fake.start()
    fake.behaviours[JUDGE] = Behaviour(reply=lambda _: '{"score": 10, "reason": "right"}')
    config = dataclasses.replace(judge_config(tmp_path, fake), auth=auth_config(tmp_path).auth)
    api = await start_api(config)
    try:
        client = openai.AsyncOpenAI(base_url=str(api.server.make_url("/v1")), api_key=ROUTER_KEY, max_retries=0)
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "grade me"}]
        )
        await client.close()
        event_id = raw.headers["x-banditroute-event-id"]
        for _ in range(200):  # the proxy keeps the sample just after its own feedback
            if await api.service.eventlog.call(api.service.store.samples):
                break
            await asyncio.sleep(0.02)
        monkeypatch.setenv(JUDGE_KEY_ENV, ROUTER_KEY)
        worker = await run_judge(api, config)
        assert worker.counts == {"judged": 1, "skipped": 0, "failed": 0}
        parts = await api.service.eventlog.call(api.service.store.feedback, event_id)
        assert [p.quality for p in parts if p.source == "judge"] == [1.0]
    finally:
        await stop_api(api)
        await fake.close()
