"""The LiteLLM integration against a real banditroute server on loopback, with LiteLLM's mocked answers (no network)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

# LiteLLM fetches its price list from the network at import unless told to use the copy it ships.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm", reason="LiteLLM is an optional extra: pip install 'banditroute[litellm]'")

from banditroute.client import AsyncClient, Client, Retry, RouteDecision  # noqa: E402
from banditroute.config import validate  # noqa: E402
from banditroute.integrations.litellm import STATE_KEY, Banditroute, UnservedModel, decision_of, query_of  # noqa: E402
from tests.conftest import Api, make_config, start_api, stop_api  # noqa: E402

# Pydantic warns about LiteLLM's own types; that is LiteLLM's business, not a failure of the integration.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydantic")

# banditroute catalog name -> the LiteLLM model behind it (LiteLLM prices these from its own cost map)
DEPLOYMENTS = {
    "gpt-4o-mini": "openai/gpt-4o-mini",
    "gpt-4.1-nano": "openai/gpt-4.1-nano",
    "claude-3-5-haiku": "anthropic/claude-3-5-haiku-20241022",
}


class RecordingClient(AsyncClient):
    """The real client, keeping the decisions it received so the test knows what banditroute chose."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.decisions: list[RouteDecision] = []

    async def route(self, query: str, **kwargs: Any) -> RouteDecision:
        decision = await super().route(query, **kwargs)
        self.decisions.append(decision)
        return decision


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Api]:
    """banditroute with a catalog of exactly the three models the LiteLLM Router serves."""
    config = make_config(tmp_path)
    config = dataclasses.replace(config, models=tuple(m for m in config.models if m.name in DEPLOYMENTS))
    validate(config)
    api = await start_api(config)
    yield api
    await stop_api(api)


@pytest.fixture
async def bandit(server: Api) -> AsyncIterator[Banditroute]:
    base = str(server.server.make_url("")).rstrip("/")
    plugin = Banditroute(base, async_client=RecordingClient(base), client=Client(base))
    yield plugin
    plugin.detach()
    await plugin.async_client.aclose()


def make_router(**settings: Any) -> Any:
    return litellm.Router(
        model_list=[
            {
                "model_name": name,
                "litellm_params": {"model": model, "api_key": "not-used", "mock_response": f"answer from {name}"},
            }
            for name, model in DEPLOYMENTS.items()
        ],
        **settings,
    )


async def feedback_for(server: Api, event_ids: list[str], timeout_s: float = 10.0) -> dict[str, list[Any]]:
    """The stored feedback parts of these events, once each has at least one (LiteLLM logs after answering)."""
    store = server.service.store
    assert store is not None
    deadline = time.monotonic() + timeout_s
    while True:
        parts = {event_id: store.feedback(event_id) for event_id in event_ids}
        if all(parts.values()) or time.monotonic() > deadline:
            return parts
        await asyncio.sleep(0.05)


async def test_each_call_goes_to_the_model_banditroute_chose_and_reports_back(server: Api, bandit: Banditroute) -> None:
    router = make_router()
    bandit.attach(router)
    client = bandit.async_client
    assert isinstance(client, RecordingClient)
    prompts = ["Summarise this memo", "Fix this Python bug", "Translate 'hello' to French", "Name three primes"]
    for i, prompt in enumerate(prompts):
        metadata = {"banditroute_metadata": {"user_tier": "pro"}}
        response = await router.acompletion(
            model="auto", messages=[{"role": "user", "content": prompt}], metadata=metadata
        )
        assert response.choices[0].message.content == f"answer from {client.decisions[i].model}"
    # The sync path: Router.completion routes through the blocking client (in a thread: the server shares our loop).
    response = await asyncio.to_thread(
        router.completion, model="auto", messages=[{"role": "user", "content": "One more question"}]
    )
    sync_decision = (await asyncio.to_thread(bandit.client.stats))["decisions"]
    assert sync_decision == len(prompts) + 1
    assert response.choices[0].message.content.startswith("answer from ")

    stats = server.service.stats()
    assert stats["decisions"] == len(prompts) + 1
    parts = await feedback_for(server, [d.event_id for d in client.decisions])
    for decision in client.decisions:
        (part,) = parts[decision.event_id]  # exactly one system part: latency, tokens and LiteLLM's cost
        assert part.source == "system" and part.error is None
        assert part.latency_ms is not None and part.latency_ms >= 0
        assert part.input_tokens and part.output_tokens
        if DEPLOYMENTS[decision.model].startswith("openai/"):  # priced by LiteLLM; others by banditroute's catalog
            assert part.cost_usd is not None and part.cost_usd > 0
        assert part.quality is None  # quality follows from the app or the judge
    # ... like this: the app sends quality with the decision, and the join completes.
    for decision in client.decisions:
        result = await client.reward(decision, quality=0.8)
        assert result.status == "learned"
    assert server.service.stats()["rewards_learned"] == len(prompts)


async def test_a_failing_model_is_reported_once_with_its_error(server: Api, bandit: Banditroute) -> None:
    router = make_router(num_retries=2, retry_after=0)
    bandit.attach(router)
    failure = litellm.RateLimitError("slow down", llm_provider="openai", model="any")
    metadata: dict[str, Any] = {}
    with pytest.raises(litellm.RateLimitError):
        await router.acompletion(
            model="auto", messages=[{"role": "user", "content": "hello"}], mock_response=failure, metadata=metadata
        )
    assert decision_of(metadata) is not None  # the caller's metadata carries the decision, for quality later
    client = bandit.async_client
    assert isinstance(client, RecordingClient)
    (decision,) = client.decisions  # one decision for the call
    assert decision_of(metadata) == decision
    assert server.service.stats()["decisions"] == 1
    parts = await feedback_for(server, [decision.event_id])
    await asyncio.sleep(0.3)  # a second report would arrive by now
    (part,) = server.service.store.feedback(decision.event_id)  # type: ignore[union-attr]
    assert (part.source, part.error) == ("system", "rate_limited")
    assert parts[decision.event_id] == [part]


async def test_a_retry_goes_to_the_next_fallback_without_a_new_decision(server: Api, bandit: Banditroute) -> None:
    # LiteLLM retries by asking the strategy again with the same request (and metadata), as it does
    # for a model group; a call to the virtual "auto" group it does not retry (LiteLLM 1.110).
    bandit.attach(make_router())
    request: dict[str, Any] = {"metadata": {}}
    messages = [{"role": "user", "content": "hello"}]
    first = await bandit.async_get_available_deployment("auto", messages, request_kwargs=request)
    second = await bandit.async_get_available_deployment("auto", messages, request_kwargs=request)
    client = bandit.async_client
    assert isinstance(client, RecordingClient)
    (decision,) = client.decisions
    assert (first["model_name"], second["model_name"]) == (decision.model, decision.fallbacks[0])
    assert len(decision.fallbacks) == 2
    await bandit.async_get_available_deployment("auto", messages, request_kwargs=request)
    with pytest.raises(UnservedModel, match="every model banditroute allowed has been tried"):
        await bandit.async_get_available_deployment("auto", messages, request_kwargs=request)
    # Any other model name is LiteLLM's business: one of its deployments, no decision.
    assert (await bandit.async_get_available_deployment("gpt-4o-mini", messages))["model_name"] == "gpt-4o-mini"
    assert len(client.decisions) == 1


async def test_the_proxy_hook_rewrites_auto_to_the_chosen_model(server: Api, bandit: Banditroute) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    data: dict[str, Any] = {"model": "auto", "messages": msgs, "metadata": {}}
    out = await bandit.async_pre_call_hook(None, None, data, "completion")
    decision = decision_of(out["metadata"])
    assert decision is not None and out["model"] == decision.model
    assert out["metadata"][STATE_KEY]["model_group"] == decision.model
    # banditroute down: the request goes on as it came (to the proxy's own "auto"), or to default_model.
    down = Banditroute("http://127.0.0.1:9", async_client=AsyncClient("http://127.0.0.1:9", retry=Retry(attempts=1)))
    try:
        assert (await down.async_pre_call_hook(None, None, {"model": "auto", "messages": msgs}, "x"))["model"] == "auto"
        down.default_model = "gpt-4o-mini"
        assert (await down.async_pre_call_hook(None, None, {"model": "auto", "messages": msgs}, "x"))[
            "model"
        ] == "gpt-4o-mini"
    finally:
        await down.async_client.aclose()
    # Another model name passes through untouched.
    other = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert await bandit.async_pre_call_hook(None, None, dict(other), "completion") == other


def test_the_query_is_the_last_user_text() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "look at"}, {"type": "image_url"}, {"text": "this"}]},
    ]
    assert query_of(messages) == "look at this"
    assert query_of(None, "an embedding input") == "an embedding input"
    with pytest.raises(ValueError, match="nothing to route on"):
        query_of([{"role": "system", "content": "x"}])
