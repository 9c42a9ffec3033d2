"""The OpenAI-compatible proxy: pure helpers, then the official `openai` SDK against banditroute on
loopback, forwarding to a real fake upstream (tests/fake_upstream.py) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from banditroute.api import chat as chat_api
from banditroute.api.requests import ApiError
from banditroute.catalog import Catalog
from banditroute.config import Config, validate
from banditroute.types import ModelSpec
from tests.conftest import Api, make_config, start_api, stop_api
from tests.support.fake_upstream import CLIENT_ERROR, FAIL_FIRST, Behaviour, FakeUpstream

PRICES = (1.0, 3.0)  # USD per 1M input / output tokens, every test model
CATALOG = Catalog(
    [
        ModelSpec("a", *PRICES, 100_000, frozenset({"tools"})),
        ModelSpec("b", *PRICES, 100_000, frozenset({"tools", "vision", "json_mode"})),
    ]
)


def chat(**body: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **body}


# -- pure helpers -------------------------------------------------------------------------------

CHAT_BAD = [
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "invalid_model"),
    (chat(model="gpt-9"), 404, "model_not_found"),
    (chat(messages=[]), 400, "invalid_messages"),
    (chat(messages="hi"), 400, "invalid_messages"),
    (chat(messages=[3]), 400, "invalid_messages"),
    (chat(messages=[{"role": "user", "content": "  "}]), 400, "invalid_messages"),
    (chat(stream="yes"), 400, "invalid_stream"),
    (chat(max_tokens=0), 400, "invalid_max_tokens"),
    (chat(max_tokens=True), 400, "invalid_max_tokens"),
    (chat(messages=[{"role": "user", "content": "x" * 101}]), 413, "query_too_long"),
]


@pytest.mark.parametrize(("body", "status", "code"), CHAT_BAD)
def test_bad_chat_requests_are_refused(body: dict, status: int, code: str) -> None:
    with pytest.raises(ApiError) as err:
        chat_api.parse_chat(body, CATALOG, {}, max_query_chars=100)
    assert (err.value.status, err.value.code) == (status, code)


def test_routing_inputs_come_from_the_conversation() -> None:
    body = {
        "model": "coding",
        "messages": [
            {"role": "system", "content": "You are terse. " * 20},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "response_format": {"type": "json_object"},
        "max_tokens": 300,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    req = chat_api.parse_chat(body, CATALOG, {"coding": {"task": "code"}}, max_query_chars=10_000)
    assert req.routed and req.requested == "coding" and req.stream and req.include_usage
    assert req.query == "what is in this picture?"
    assert req.max_output_tokens == 300
    assert req.metadata == {
        "turns": "t2",
        "system_prompt": "c2",
        "tools": True,
        "response_format": "json_object",
        "capabilities": ["tools", "vision", "json_mode"],
        "task": "code",
    }
    assert req.input_tokens > len("what is in this picture?") // 4 + len("You are terse. " * 20) // 4


def test_an_explicit_model_is_not_routed() -> None:
    req = chat_api.parse_chat(chat(model="b", max_completion_tokens=5), CATALOG, {}, max_query_chars=100)
    assert not req.routed and req.max_output_tokens == 5
    assert req.metadata == {"turns": "t1", "system_prompt": "none", "tools": False, "response_format": "none"}


def test_stream_meter_reads_events_split_anywhere() -> None:
    stream = (
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}\n\ndata: [DONE]\n\n'
    )
    meter = chat_api.StreamMeter(keep_text=True)
    firsts = [meter.feed(stream[i : i + 13]) for i in range(0, len(stream), 13)]
    assert firsts.count(True) == 1 and firsts.index(True) < len(firsts) // 2
    assert ("".join(meter.text), meter.chars, meter.done) == ("Hello", 5, True)
    assert chat_api.tokens_used(meter.usage, 99, meter.chars) == chat_api.Usage(7, 2, False)


def test_tokens_are_counted_when_usage_is_missing() -> None:
    assert chat_api.tokens_used(None, 12, 41) == chat_api.Usage(12, 11, True)
    assert chat_api.tokens_used({"prompt_tokens": "x"}, 12, 8) == chat_api.Usage(12, 2, True)


def test_retry_statuses() -> None:
    assert [chat_api.retry_error(s) for s in (200, 400, 404, 429, 500, 503)] == [
        None,
        None,
        None,
        "rate_limited",
        "server_error",
        "server_error",
    ]


def test_judge_sampling_is_a_stable_draw_at_the_configured_rate() -> None:
    ids = [f"{i:032x}" for i in range(4000)]
    kept = [e for e in ids if chat_api.sampled(e, 0.25)]
    assert 800 < len(kept) < 1200 and kept == [e for e in ids if chat_api.sampled(e, 0.25)]
    assert not any(chat_api.sampled(e, 0.0) for e in ids[:100]) and all(chat_api.sampled(e, 1.0) for e in ids[:100])


# -- end to end with the openai SDK -------------------------------------------------------------


def proxy_config(tmp_path: Path, base_url: str, names: tuple[str, ...] = ("a", "b", "c"), **sections: Any) -> Config:
    cfg = make_config(tmp_path, **sections)
    models = tuple(
        ModelSpec(n, *PRICES, 100_000, frozenset({"tools"}), base_url=base_url, upstream_model=f"up-{n}") for n in names
    )
    cfg = dataclasses.replace(cfg, models=models)
    validate(cfg)
    return cfg


@pytest.fixture
async def gateway(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Api]:
    api = await start_api(
        proxy_config(tmp_path, upstream.base_url, proxy={"total_deadline_s": 5.0, "attempt_timeout_s": 0.5})
    )
    yield api
    await stop_api(api)


@contextlib.asynccontextmanager
async def sdk(api: Api) -> AsyncIterator[tuple[openai.OpenAI, openai.AsyncOpenAI]]:
    """The official client, sync and async, pointed at banditroute as an app would point it."""
    url = str(api.server.make_url("/v1"))
    sync = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
    try:
        yield sync, client
    finally:
        sync.close()
        await client.close()


@pytest.fixture
async def clients(gateway: Api) -> AsyncIterator[tuple[openai.OpenAI, openai.AsyncOpenAI]]:
    async with sdk(gateway) as both:
        yield both


async def system_parts(api: Api, event_id: str, want: int = 1) -> list:
    """The proxy's feedback parts for an event, once the write queue has committed them."""
    for _ in range(100):
        parts = [
            p for p in await api.service.eventlog.call(api.service.store.feedback, event_id) if p.source == "system"
        ]
        if len(parts) >= want:
            return parts
        await asyncio.sleep(0.02)
    raise AssertionError(f"no system feedback for {event_id}")


async def test_sync_client_gets_the_answer_and_the_proxy_feeds_back(
    clients: Any, gateway: Api, upstream: FakeUpstream
) -> None:
    sync, _ = clients
    raw = await asyncio.to_thread(
        sync.chat.completions.with_raw_response.create,
        model="auto",
        messages=[{"role": "user", "content": "what is six times seven"}],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "The answer is 42."
    event_id, model = raw.headers["x-banditroute-event-id"], raw.headers["x-banditroute-model"]
    decision = await gateway.service.eventlog.call(gateway.service.store.decision, event_id)
    assert decision is not None and decision.model == model
    assert upstream.requests[-1]["model"] == f"up-{model}"  # the upstream's own name for it
    [part] = await system_parts(gateway, event_id)
    assert (
        (part.input_tokens, part.output_tokens)
        == (completion.usage.prompt_tokens, completion.usage.completion_tokens)
        == (5, 4)
    )
    assert part.cost_usd == pytest.approx((5 * PRICES[0] + 4 * PRICES[1]) / 1e6)
    assert part.latency_ms > 0 and part.error is None
    # quality later, by the event id the header gave: the join completes and the policy learns
    status, answer = await gateway.post("/reward", {"event_id": event_id, "quality": 1.0})
    assert (status, answer["status"]) == (202, "learned")


async def test_streaming_passes_chunks_through_and_measures_ttft(
    clients: Any, gateway: Api, upstream: FakeUpstream
) -> None:
    upstream.behaviours = {f"up-{n}": Behaviour(reply="one two three four five", chunk_delay_s=0.05) for n in "abc"}
    _, client = clients
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model="auto",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count to five"}],
    )
    event_id = stream.response.headers["x-banditroute-event-id"]
    arrivals, pieces, usage = [], [], None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == "one two three four five"
    # chunk by chunk: the first piece arrived well before the last was produced (5 x 50 ms later)
    assert arrivals[-1] - arrivals[0] >= 0.15
    [part] = await system_parts(gateway, event_id)
    assert (part.input_tokens, part.output_tokens) == (usage.prompt_tokens, usage.completion_tokens) == (3, 5)
    assert 0 < part.ttft_ms < part.latency_ms and part.latency_ms >= 250


async def test_sync_streaming_without_usage_counts_tokens(clients: Any, gateway: Api) -> None:
    sync, _ = clients

    def run() -> tuple[str, str]:
        stream = sync.chat.completions.create(
            model="auto", stream=True, messages=[{"role": "user", "content": "what is six times seven"}]
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        return text, stream.response.headers["x-banditroute-event-id"]

    text, event_id = await asyncio.to_thread(run)
    assert text == "The answer is 42."
    [part] = await system_parts(gateway, event_id)
    assert (part.input_tokens, part.output_tokens) == (6, 5)  # counted: characters / 4, rounded up


async def test_a_failing_upstream_falls_back_and_the_failure_is_fed_back(clients: Any, gateway: Api) -> None:
    sync, _ = clients
    raw = await asyncio.to_thread(
        sync.chat.completions.with_raw_response.create,
        model="auto",
        messages=[{"role": "user", "content": f"{FAIL_FIRST} hello"}],
    )
    assert raw.parse().choices[0].message.content == "The answer is 42."
    event_id = raw.headers["x-banditroute-event-id"]
    decision = await gateway.service.eventlog.call(gateway.service.store.decision, event_id)
    assert raw.headers["x-banditroute-model"] != decision.model  # served by a fallback
    [part] = await system_parts(gateway, event_id)
    assert part.error == "server_error"  # the chosen model's failure is its feedback: learned at once
    # The learned row itself is written fire-and-forget (a batch may linger `server.write_linger_ms`).
    for _ in range(250):
        if await gateway.service.eventlog.call(gateway.service.store.is_learned, event_id):
            break
        await asyncio.sleep(0.02)
    assert await gateway.service.eventlog.call(gateway.service.store.is_learned, event_id)


async def test_a_silent_upstream_is_abandoned_for_the_next_within_the_deadline(
    clients: Any, gateway: Api, upstream: FakeUpstream
) -> None:
    _, client = clients
    for slow in "abc":  # whichever model the bandit draws, one of them hangs for 3 s
        upstream.behaviours = {f"up-{slow}": Behaviour(delay_s=3.0)}
        started = time.monotonic()
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hello there"}]
        )
        assert time.monotonic() - started < 2.0  # attempt_timeout_s = 0.5, not the 3 s hang
        assert raw.parse().choices[0].message.content == "The answer is 42."
        assert raw.headers["x-banditroute-model"] != slow
        decision = await gateway.service.eventlog.call(
            gateway.service.store.decision, raw.headers["x-banditroute-event-id"]
        )
        parts = await system_parts(gateway, decision.event_id)
        assert [p.error for p in parts] == (["timeout"] if decision.model == slow else [None])


async def test_all_upstreams_failing_answers_502_within_the_deadline(
    clients: Any, gateway: Api, upstream: FakeUpstream
) -> None:
    upstream.behaviours = {f"up-{n}": Behaviour(status=500) for n in "abc"}
    _, client = clients
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello"}])
    assert err.value.status_code == 502
    assert err.value.response.headers["x-banditroute-event-id"]
    assert len(upstream.requests) == 3  # every model once


async def test_client_errors_are_returned_as_they_are(clients: Any, gateway: Api, upstream: FakeUpstream) -> None:
    _, client = clients
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model="auto", messages=[{"role": "user", "content": CLIENT_ERROR}])
    assert "malformed" in str(err.value) and len(upstream.requests) == 1  # no fallback for the client's fault
    event_id = err.value.response.headers["x-banditroute-event-id"]
    await asyncio.sleep(0.05)
    assert await gateway.service.eventlog.call(gateway.service.store.feedback, event_id) == []


async def test_explicit_model_is_passed_through_and_logged(clients: Any, gateway: Api, upstream: FakeUpstream) -> None:
    _, client = clients
    raw = await client.chat.completions.with_raw_response.create(
        model="b", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-banditroute-model"] == "b" and upstream.requests[-1]["model"] == "up-b"
    decision = await gateway.service.eventlog.call(
        gateway.service.store.decision, raw.headers["x-banditroute-event-id"]
    )
    assert decision.models == ("b",) and decision.pmf == (1.0,)


async def test_connection_refused_falls_back(tmp_path: Path, upstream: FakeUpstream) -> None:
    cfg = proxy_config(tmp_path, upstream.base_url, proxy={"total_deadline_s": 5.0})
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens on loopback
    models = tuple(dataclasses.replace(m, base_url=dead) if m.name != "c" else m for m in cfg.models)
    api = await start_api(dataclasses.replace(cfg, models=models))
    try:
        async with sdk(api) as (_, client):
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": "hello"}]
            )
            assert raw.headers["x-banditroute-model"] == "c"
            decision = await api.service.eventlog.call(
                api.service.store.decision, raw.headers["x-banditroute-event-id"]
            )
            parts = await system_parts(api, decision.event_id)
            assert [p.error for p in parts] == ([None] if decision.model == "c" else ["connection_error"])
    finally:
        await stop_api(api)


async def test_models_lists_auto_profiles_and_the_catalog(tmp_path: Path, upstream: FakeUpstream) -> None:
    api = await start_api(proxy_config(tmp_path, upstream.base_url, proxy={"profiles": {"cheap": {"task": "chat"}}}))
    try:
        async with sdk(api) as (_, client):
            ids = [m.id async for m in client.models.list()]
            assert ids == ["auto", "cheap", "a", "b", "c"]
            raw = await client.chat.completions.with_raw_response.create(
                model="cheap", messages=[{"role": "user", "content": "hi"}]
            )
            assert raw.headers["x-banditroute-model"] in {"a", "b", "c"}
    finally:
        await stop_api(api)


async def test_models_without_an_upstream_are_not_routed_to(api: Api) -> None:
    status, answer = await api.post("/v1/chat/completions", chat())
    assert (status, answer["error"]["code"]) == (422, "no_model_allowed")
    status, answer = await api.post("/v1/chat/completions", chat(model="gpt-4.1"))
    assert (status, answer["error"]["code"]) == (400, "model_not_proxied")


async def test_a_stream_that_breaks_midway_is_reported_to_client_and_policy(
    clients: Any, gateway: Api, upstream: FakeUpstream
) -> None:
    upstream.behaviours = {f"up-{n}": Behaviour(reply="a b c d e f", break_after_chunks=3) for n in "abc"}
    _, client = clients
    stream = await client.chat.completions.create(
        model="auto", stream=True, messages=[{"role": "user", "content": "hello"}]
    )
    event_id = stream.response.headers["x-banditroute-event-id"]
    pieces = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            pieces.append(chunk.choices[0].delta.content or "")
    assert "".join(pieces) == "a b "  # what came before the break, then the error
    [part] = await system_parts(gateway, event_id)
    assert part.error == "connection_error"
