"""What the proxy's answers tell a client: the attempts and models tried, errors in the OpenAI shape
with the real rule and the real elapsed time, and `x-should-retry: false` once its own fallbacks are
spent, so the official SDK (with its default retries) makes one decision per call."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from banditroute.types import ModelSpec
from tests.api.test_proxy import PRICES, proxy_config, sdk
from tests.conftest import Api, start_api, stop_api
from tests.support.fake_upstream import CLIENT_ERROR, FAIL_FIRST, Behaviour, FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]


async def decisions(api: Api) -> int:
    counts = await api.service.eventlog.call(api.service.store.counts)
    return int(counts["decisions"])


async def test_an_answer_names_its_attempts_and_the_models_tried(tmp_path: Path, upstream: FakeUpstream) -> None:
    api = await start_api(proxy_config(tmp_path, upstream.base_url, proxy={"total_deadline_s": 5.0}))
    try:
        async with sdk(api) as (_, client):
            raw = await client.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
            assert raw.headers["x-banditroute-attempts"] == "1"
            assert raw.headers["x-banditroute-models"] == raw.headers["x-banditroute-model"]
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": f"{FAIL_FIRST} hi"}]
            )
            tried = raw.headers["x-banditroute-models"].split(",")
            assert raw.headers["x-banditroute-attempts"] == "2" and len(tried) == 2
            assert tried[-1] == raw.headers["x-banditroute-model"] != tried[0]  # the fallback served it
            decision = await api.service.eventlog.call(
                api.service.store.decision, raw.headers["x-banditroute-event-id"]
            )
            assert tried[0] == decision.model  # the chosen model was tried first
    finally:
        await stop_api(api)


async def test_spent_fallbacks_answer_once_in_the_openai_shape_with_the_real_elapsed_time(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.behaviours = {f"up-{n}": Behaviour(status=500) for n in "abc"}
    api = await start_api(proxy_config(tmp_path, upstream.base_url))  # total_deadline_s: the default 120 s
    url = str(api.server.make_url("/v1"))
    client = openai.AsyncOpenAI(base_url=url, api_key="unused")  # the SDK's default retries (2)
    try:
        before = await decisions(api)
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as err:
            await client.chat.completions.create(model="auto", messages=HELLO)
        took_ms = 1000 * (time.monotonic() - started)
        assert await decisions(api) == before + 1  # the SDK did not retry: one call, one decision
        assert len(upstream.requests) == 3  # every model once, by the proxy itself
        response = err.value.response
        assert response.status_code == 502 and response.headers["x-should-retry"] == "false"
        assert response.headers["x-banditroute-attempts"] == "3"
        assert sorted(response.headers["x-banditroute-models"].split(",")) == ["a", "b", "c"]
        error = response.json()["error"]
        assert (error["type"], error["code"], error["param"]) == ("server_error", "upstream_unavailable", None)
        assert [a["error"] for a in error["attempts"]] == ["server_error"] * 3
        assert all(a["detail"] == "HTTP 500" for a in error["attempts"])
        assert 0 < error["elapsed_ms"] <= took_ms  # what it took, not the configured deadline
        assert "120" not in error["message"] and "3 attempt(s) in" in error["message"]
    finally:
        await client.close()
        await stop_api(api)


async def test_a_client_error_passed_through_is_not_retried_by_the_sdk(tmp_path: Path, upstream: FakeUpstream) -> None:
    api = await start_api(proxy_config(tmp_path, upstream.base_url))
    client = openai.AsyncOpenAI(base_url=str(api.server.make_url("/v1")), api_key="unused")
    try:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="auto", messages=[{"role": "user", "content": CLIENT_ERROR}])
        assert err.value.response.headers["x-should-retry"] == "false"
        assert err.value.response.headers["x-banditroute-attempts"] == "1"
        assert err.value.response.json() == {
            "error": {"message": "this request is malformed", "type": "fake", "code": "400"}
        }
    finally:
        await client.close()
        await stop_api(api)


async def test_after_a_failure_starts_a_cooldown_the_refusal_names_the_cooldown(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    cfg = proxy_config(tmp_path, upstream.base_url, names=("a",), rules={"cooldown_failures": 1, "cooldown_s": 600.0})
    offline = ModelSpec("no-upstream", *PRICES, 100_000, frozenset({"tools"}))  # a catalog model the proxy cannot reach
    api = await start_api(dataclasses.replace(cfg, models=(*cfg.models, offline)))
    upstream.behaviours = {"up-a": Behaviour(status=503)}
    try:
        async with sdk(api) as (_, client):
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="auto", messages=HELLO)
            for model in ("auto", "a"):
                with pytest.raises(openai.UnprocessableEntityError) as err:
                    await client.chat.completions.create(model=model, messages=HELLO)
                error = err.value.response.json()["error"]
                assert (error["code"], error["rule"], error["type"]) == (
                    "no_model_allowed",
                    "cooldown",
                    "invalid_request_error",
                )
                assert error["excluded"]["a"] == "cooldown" and "rule 'cooldown'" in error["message"]
    finally:
        await stop_api(api)


async def test_every_proxy_refusal_is_in_the_openai_shape(tmp_path: Path, upstream: FakeUpstream) -> None:
    api = await start_api(proxy_config(tmp_path, upstream.base_url))
    try:
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"model": "gpt-9", "messages": HELLO}, 404, "model_not_found"),
            ({"model": "auto", "messages": []}, 400, "invalid_messages"),
        ]
        for body, status, code in cases:
            got, answer = await api.post("/v1/chat/completions", body)
            assert (got, answer["error"]["code"], answer["error"]["type"]) == (status, code, "invalid_request_error")
            assert answer["error"]["message"] and answer["error"]["param"] is None
        got, answer = await api.post("/route", {"query": 3})  # the other endpoints keep their own shape
        assert got == 400 and set(answer["error"]) == {"code", "message"}
    finally:
        await stop_api(api)


async def test_a_deadline_that_runs_out_says_how_many_fallbacks_were_left(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.behaviours = {f"up-{n}": Behaviour(delay_s=2.0) for n in "abc"}
    api = await start_api(
        proxy_config(tmp_path, upstream.base_url, proxy={"total_deadline_s": 0.3, "attempt_timeout_s": 0.2})
    )
    try:
        started = time.monotonic()
        status, answer = await api.post("/v1/chat/completions", {"model": "auto", "messages": HELLO})
        assert time.monotonic() - started < 1.5
        error = answer["error"]
        assert (status, error["code"]) == (504, "upstream_timeout")
        assert [a["error"] for a in error["attempts"]] == ["timeout"] * len(error["attempts"])
        assert "the total deadline of 0.3 s ran out with" in error["message"] and len(error["attempts"]) < 3
        assert 250 <= error["elapsed_ms"] < 1500
    finally:
        await stop_api(api)
