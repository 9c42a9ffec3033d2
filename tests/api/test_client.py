"""banditroute.client against real servers on loopback: the service itself, and tiny apps that misbehave on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from banditroute.auth import api_key, hash_key
from banditroute.client import (
    AsyncClient,
    BadRequest,
    Client,
    ConnectionFailed,
    Overloaded,
    RateLimited,
    Retry,
    RouteDecision,
    Unauthorized,
    UnknownEvent,
)
from tests.conftest import Api, free_port, make_config, start_api, stop_api

KEY = "client-test-key"
DECISION = {
    "event_id": "e1",
    "model": "gpt-4o-mini",
    "probability": 0.8,
    "pmf": {"gpt-4o-mini": 0.8, "gpt-4.1": 0.2},
    "explored": False,
    "fallbacks": ["gpt-4.1"],
    "excluded": {},
    "reason": "exploit",
    "reward_token": "0" * 64,
}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Api]:
    """The service with auth on and one key that may route and reward."""
    keys = (api_key(hash_key(KEY).hex(), ["route", "reward"]),)
    api = await start_api(make_config(tmp_path, auth={"mode": "on", "keys": keys}))
    yield api
    await stop_api(api)


async def stub(handler: Callable[[web.Request], web.Response]) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def url(api: Api) -> str:
    return str(api.server.make_url("")).rstrip("/")


async def test_sync_route_then_reward_from_a_decision_sent_elsewhere(api: Api) -> None:
    router_side = Client(url(api))
    decision = await asyncio.to_thread(router_side.route, "Write a haiku about the sea", user_tier="pro")
    assert decision.model in decision.pmf and decision.probability == decision.pmf[decision.model]
    carried = decision.to_json()  # e.g. through a queue to the process that learns how the answer went

    feedback_side = Client(url(api))
    received = RouteDecision.from_json(carried)
    assert received == decision
    result = await asyncio.to_thread(feedback_side.reward, received, quality=0.9, latency_ms=840.0, cost_usd=0.0004)
    assert result.event_id == decision.event_id and result.status == "learned" and result.reward is not None
    stats = await asyncio.to_thread(feedback_side.stats)
    assert stats["decisions"] == 1 and stats["rewards_learned"] == 1


async def test_async_route_then_reward_from_a_decision_sent_elsewhere(api: Api) -> None:
    async with AsyncClient(url(api)) as client:
        decision = await client.route("Fix this SQL query", capabilities=["code"])
    async with AsyncClient(url(api)) as other:
        result = await other.reward(RouteDecision.from_json(decision.to_json()), quality=0.4, cost_usd=0.001)
        assert result.status == "learned" and result.quality_applied is True
        # By event id alone: a second part is late (the join completed), yet stored.
        late = await other.reward(decision.event_id, quality=1.0, source="judge")
        assert late.status == "late"


async def test_errors_are_typed_and_carry_the_server_code(api: Api) -> None:
    async with AsyncClient(url(api)) as client:
        decision = await client.route("hello")
        with pytest.raises(BadRequest) as bad:
            await client.reward(decision, quality=2.0)
        assert (bad.value.status, bad.value.code) == (400, "invalid_quality")
        with pytest.raises(UnknownEvent) as unknown:
            await client.reward("no-such-event", quality=1.0)
        assert unknown.value.code == "unknown_event"
    with pytest.raises(BadRequest) as empty:
        await asyncio.to_thread(Client(url(api)).route, " ")
    assert empty.value.code == "invalid_query"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_400_is_raised_at_once_without_retrying(mode: str) -> None:
    hits: list[float] = []

    async def refuse(request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        body = {"error": {"code": "invalid_query", "message": "query must not be empty"}}
        return web.json_response(body, status=400)

    server = await stub(refuse)
    base = str(server.make_url("")).rstrip("/")
    try:
        with pytest.raises(BadRequest) as exc:
            if mode == "sync":
                await asyncio.to_thread(Client(base).route, "x")
            else:
                async with AsyncClient(base) as client:
                    await client.route("x")
        assert (exc.value.code, exc.value.message) == ("invalid_query", "query must not be empty")
        assert len(hits) == 1
    finally:
        await server.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_503_is_retried_after_what_retry_after_asks(mode: str) -> None:
    hits: list[float] = []

    async def busy_twice(request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        if len(hits) <= 2:
            body = {"error": {"code": "overloaded", "message": "retry shortly"}}
            return web.json_response(body, status=503, headers={"Retry-After": "1"})
        return web.json_response(DECISION)

    server = await stub(busy_twice)
    base = str(server.make_url("")).rstrip("/")
    # Backoff alone would wait at most 0.01 s: the waits measured are Retry-After's.
    retry = Retry(attempts=3, backoff_s=0.01, total_s=10.0)
    started = time.monotonic()
    try:
        if mode == "sync":
            decision = await asyncio.to_thread(Client(base, retry=retry).route, "x")
        else:
            async with AsyncClient(base, retry=retry) as client:
                decision = await client.route("x")
    finally:
        await server.close()
    elapsed = time.monotonic() - started
    assert decision == RouteDecision.from_response(DECISION)
    assert len(hits) == 3
    gaps = [b - a for a, b in zip(hits, hits[1:])]
    assert all(gap >= 0.99 for gap in gaps), gaps
    assert elapsed < 4.0


async def test_retries_stop_at_the_attempt_bound() -> None:
    hits: list[float] = []

    async def always_busy(request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        return web.json_response({"error": {"code": "overloaded", "message": "no"}}, status=503)

    server = await stub(always_busy)
    try:
        async with AsyncClient(str(server.make_url("")), retry=Retry(attempts=3, backoff_s=0.01)) as client:
            with pytest.raises(Overloaded):
                await client.route("x")
    finally:
        await server.close()
    assert len(hits) == 3


async def test_a_retry_after_beyond_the_time_bound_is_not_waited_for() -> None:
    hits: list[float] = []

    async def later(request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        body = {"error": {"code": "rate_limited", "message": "later"}}
        return web.json_response(body, status=429, headers={"Retry-After": "60"})

    server = await stub(later)
    started = time.monotonic()
    try:
        with pytest.raises(RateLimited) as exc:
            await asyncio.to_thread(Client(str(server.make_url("")), retry=Retry(total_s=5.0)).route, "x")
    finally:
        await server.close()
    assert exc.value.retry_after_s == 60.0 and exc.value.code == "rate_limited"
    assert len(hits) == 1 and time.monotonic() - started < 2.0


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_connection_errors_are_retried_then_raised(mode: str) -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    retry = Retry(attempts=3, backoff_s=0.05)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as exc:
        if mode == "sync":
            await asyncio.to_thread(Client(base, retry=retry).route, "x")
        else:
            async with AsyncClient(base, retry=retry) as client:
                await client.route("x")
    # Two waits of 0.025..0.05 s (half-jittered 0.05, then 0.1): the retries did happen.
    assert 0.07 <= time.monotonic() - started < 2.0
    assert exc.value.status == 0 and exc.value.code == "connection_error"


async def test_an_api_key_from_the_argument_or_the_environment(secured: Api) -> None:
    base = url(secured)
    with pytest.raises(Unauthorized) as exc:
        await asyncio.to_thread(Client(base, environ={}).route, "hello")
    assert (exc.value.status, exc.value.code) == (401, "unauthorized")

    from_env = Client(base, environ={"BANDITROUTE_API_KEY": KEY})
    decision = await asyncio.to_thread(from_env.route, "hello")
    async with AsyncClient(base, api_key=KEY, environ={}) as client:
        # With auth on the reward token is required: the decision carries it, the bare event id does not.
        with pytest.raises(Unauthorized) as missing:
            await client.reward(decision.event_id, quality=1.0)
        assert missing.value.code == "reward_token_required"
        with pytest.raises(Unauthorized) as wrong:
            await client.reward(decision.event_id, quality=1.0, reward_token="f" * 64)
        assert (wrong.value.status, wrong.value.code) == (403, "invalid_reward_token")
        result = await client.reward(RouteDecision.from_json(decision.to_json()), quality=1.0)
        assert result.status == "pending"  # stored and joined: the cost part is still to come


def test_a_decision_round_trips_and_bad_ones_are_refused() -> None:
    decision = RouteDecision.from_response(DECISION)
    assert RouteDecision.from_json(decision.to_json()) == decision
    assert orjson.loads(decision.to_json())["fallbacks"] == ["gpt-4.1"]
    for bad in ("[]", "{", '{"event_id": "e1"}', orjson.dumps({**DECISION, "model": 3})):
        with pytest.raises(ValueError, match="not a banditroute decision"):
            RouteDecision.from_json(bad)
