"""The HTTP API against a real server on loopback, a real client and a real SQLite file."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Api, make_config, start_api, stop_api

ROUTE_BAD = [
    (b"not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_body"),
    (b'{"query": 3}', 400, "invalid_query"),
    (b'{"query": "   "}', 400, "invalid_query"),
    (b'{"query": "hi", "metadata": [1]}', 400, "invalid_metadata"),
    (b'{"query": "hi", "metadata": {"a": {"b": 1}}}', 400, "invalid_metadata"),
    (b'{"query": "hi", "metadata": {"capabilities": "tools"}}', 400, "invalid_metadata"),
    (b'{"query": "hi", "max_output_tokens": -5}', 400, "invalid_max_output_tokens"),
    (b'{"query": "hi", "max_output_tokens": 1.5}', 400, "invalid_max_output_tokens"),
    (b'{"query": "hi", "surprise": 1}', 400, "unknown_field"),
    (b'{"query": "hi", "metadata": {"capabilities": ["teleportation"]}}', 422, "no_model_allowed"),
    (b'{"query": "hi", "metadata": {"sensitive": "yes"}}', 400, "invalid_metadata"),
    (b'{"query": "hi", "metadata": {"max_latency_ms": 0}}', 400, "invalid_metadata"),
    (b'{"query": "hi", "metadata": {"max_latency_ms": "fast"}}', 400, "invalid_metadata"),
    (b'{"query": "hi", "metadata": {"conversation_id": ["a"]}}', 400, "invalid_metadata"),
    (b'{"query": "hi", "metadata": {"user_tier": true}}', 400, "invalid_metadata"),
    (b'{"query": "hi", "escalate_from": 3}', 400, "invalid_escalate_from"),
    (b'{"query": "hi", "escalate_from": "gpt-9"}', 400, "invalid_escalate_from"),
    (b'{"query": "hi", "escalate_from": "claude-opus-4"}', 422, "no_model_allowed"),
    (b'{"query": "' + b"x " * 2_050_000 + b'"}', 413, "query_too_long"),
    (b'{"query": "' + b"x" * 9_000_000 + b'"}', 413, "body_too_large"),
]

REWARD_BAD = [
    (b"{", 400, "invalid_json"),
    (b'{"quality": 1}', 400, "invalid_event_id"),
    (b'{"event_id": "a b", "quality": 1}', 400, "invalid_event_id"),
    (b'{"event_id": "EID"}', 400, "empty_feedback"),
    (b'{"event_id": "EID", "quality": 1.5}', 400, "invalid_quality"),
    (b'{"event_id": "EID", "quality": -0.1}', 400, "invalid_quality"),
    (b'{"event_id": "EID", "quality": NaN}', 400, "invalid_json"),
    (b'{"event_id": "EID", "quality": Infinity}', 400, "invalid_json"),
    (b'{"event_id": "EID", "quality": "good"}', 400, "invalid_quality"),
    (b'{"event_id": "EID", "quality": true}', 400, "invalid_quality"),
    (b'{"event_id": "EID", "cost_usd": -1}', 400, "invalid_cost_usd"),
    (b'{"event_id": "EID", "latency_ms": -3}', 400, "invalid_latency_ms"),
    (b'{"event_id": "EID", "input_tokens": 2.5}', 400, "invalid_input_tokens"),
    (b'{"event_id": "EID", "output_tokens": -1}', 400, "invalid_output_tokens"),
    (b'{"event_id": "EID", "quality": 1, "source": "oracle"}', 400, "invalid_source"),
    (b'{"event_id": "EID", "quality": 1, "bonus": 3}', 400, "unknown_field"),
    (b'{"event_id": "EID", "error": "meteor"}', 400, "invalid_error"),
    (b'{"event_id": "0123456789abcdef0123456789abcdef", "quality": 1}', 404, "unknown_event"),
]


async def counts(api: Api) -> tuple[dict, dict]:
    _, stats = await api.get("/stats")
    await asyncio.sleep(0.05)  # let the write queue drain
    store = await api.service.eventlog.call(api.service.store.counts)
    return ({k: stats[k] for k in ("decisions", "feedback_parts", "rewards_learned", "pending_joins")}, store)


@pytest.mark.parametrize(("body", "status", "code"), ROUTE_BAD)
async def test_bad_route_is_refused_and_changes_nothing(api: Api, body: bytes, status: int, code: str) -> None:
    before = await counts(api)
    got, answer = await api.post("/route", data=body)
    assert (got, answer["error"]["code"]) == (status, code)
    assert answer["error"]["message"]
    assert await counts(api) == before


@pytest.mark.parametrize(("body", "status", "code"), REWARD_BAD)
async def test_bad_reward_is_refused_and_changes_nothing(api: Api, body: bytes, status: int, code: str) -> None:
    _, decision = await api.post("/route", {"query": "what is the capital of France?"})
    before = await counts(api)
    got, answer = await api.post("/reward", data=body.replace(b"EID", decision["event_id"].encode()))
    assert (got, answer["error"]["code"]) == (status, code)
    assert await counts(api) == before


async def test_route_answers_the_documented_shape(api: Api) -> None:
    status, d = await api.post(
        "/route",
        {
            "query": "Write a Python function that reverses a list",
            "metadata": {"user_tier": "free", "channel": "web", "task": "code"},
        },
    )
    assert status == 200
    assert set(d) == {
        "event_id",
        "model",
        "probability",
        "pmf",
        "explored",
        "fallbacks",
        "excluded",
        "reason",
        "reward_token",
    }
    assert len(d["event_id"]) == 32 and int(d["event_id"], 16) >= 0  # 128 random bits, hex
    assert d["pmf"][d["model"]] == pytest.approx(d["probability"])
    assert sum(d["pmf"].values()) == pytest.approx(1.0, abs=1e-5)
    assert d["model"] not in d["fallbacks"] and len(d["fallbacks"]) == len(d["pmf"]) - 1
    _, again = await api.post("/route", {"query": "Write a Python function that reverses a list"})
    assert again["event_id"] != d["event_id"]


async def test_capabilities_and_context_window_limit_the_allowed_set(api: Api) -> None:
    _, d = await api.post("/route", {"query": "describe this image", "metadata": {"capabilities": ["vision", "code"]}})
    _, catalog = await api.get("/models")
    allowed = {m["name"] for m in catalog["models"] if {"vision", "code"} <= set(m["capabilities"])}
    assert set(d["pmf"]) == allowed and d["model"] in allowed
    assert "capabilities" in d["reason"]
    long_query = "word " * 160_000  # ~200k tokens: only the 1M-token models fit
    _, d = await api.post("/route", {"query": long_query})
    assert set(d["pmf"]) == {m["name"] for m in catalog["models"] if m["context_window"] >= 200_000}


async def test_feedback_in_parts_learns_once_complete(api: Api) -> None:
    _, d = await api.post("/route", {"query": "Summarise this paragraph about bees."})
    eid = d["event_id"]
    status, a = await api.post(
        "/reward", {"event_id": eid, "latency_ms": 850, "input_tokens": 12, "output_tokens": 60, "source": "system"}
    )
    assert (status, a["status"]) == (202, "pending")
    _, stats = await api.get("/stats")
    assert stats["pending_joins"] == 1 and stats["rewards_learned"] == 0
    status, a = await api.post("/reward", {"event_id": eid, "quality": 0.8, "source": "judge"})
    assert (status, a["status"], a["quality_applied"]) == (202, "learned", True)
    spec = next(m for m in (await api.get("/models"))[1]["models"] if m["name"] == d["model"])
    cost = (12 * spec["input_price"] + 60 * spec["output_price"]) / 1e6
    assert a["reward"] == pytest.approx(0.8 - 0.1 * cost / 0.001)
    _, stats = await api.get("/stats")
    assert (stats["pending_joins"], stats["rewards_learned"]) == (0, 1)


async def test_duplicate_quality_follows_the_first_wins_rule(api: Api) -> None:
    _, d = await api.post("/route", {"query": "Translate 'good morning' to German."})
    eid = d["event_id"]
    await api.post("/reward", {"event_id": eid, "quality": 0.2})
    _, first = await api.post("/reward", {"event_id": eid, "cost_usd": 0.0001})
    assert first["status"] == "learned" and first["reward"] == pytest.approx(0.2 - 0.1 * 0.0001 / 0.001)
    status, late = await api.post("/reward", {"event_id": eid, "quality": 0.9})
    assert (status, late["status"], late["quality_applied"], late["quality_rule"]) == (202, "late", False, "first")
    _, stats = await api.get("/stats")
    assert stats["late_parts"] == 1 and stats["rewards_learned"] == 1
    stored = await api.service.eventlog.call(api.service.store.feedback, eid)
    assert [p.quality for p in stored] == [0.2, None, 0.9]  # the late part is stored, not learned


async def test_last_wins_rule_replaces_quality_while_pending(tmp_path) -> None:
    api = await start_api(make_config(tmp_path, reward={"quality_rule": "last"}))
    try:
        _, d = await api.post("/route", {"query": "Name three prime numbers."})
        eid = d["event_id"]
        await api.post("/reward", {"event_id": eid, "quality": 0.1})
        _, a = await api.post("/reward", {"event_id": eid, "quality": 0.7})
        assert (a["status"], a["quality_applied"], a["quality_rule"]) == ("pending", True, "last")
        _, a = await api.post("/reward", {"event_id": eid, "cost_usd": 0.0})
        assert a["reward"] == pytest.approx(0.7)
    finally:
        await stop_api(api)


async def test_expiry_applies_the_default_quality(tmp_path) -> None:
    api = await start_api(make_config(tmp_path, reward={"reward_wait_s": 0.2, "default_quality": 0.3}))
    try:
        _, d = await api.post("/route", {"query": "Tell me a joke about databases."})
        await api.post("/reward", {"event_id": d["event_id"], "cost_usd": 0.0002, "latency_ms": 100})
        for _ in range(100):
            _, stats = await api.get("/stats")
            if stats["rewards_learned"]:
                break
            await asyncio.sleep(0.05)
        assert (stats["rewards_learned"], stats["defaults_applied"], stats["pending_joins"]) == (1, 1, 0)
        _, a = await api.post("/reward", {"event_id": d["event_id"], "quality": 1.0})
        assert a["status"] == "late"
    finally:
        await stop_api(api)


async def test_skip_rule_learns_nothing_without_quality(tmp_path) -> None:
    api = await start_api(make_config(tmp_path, reward={"reward_wait_s": 0.1, "default_quality": None}))
    try:
        await api.post("/route", {"query": "hello there"})
        for _ in range(100):
            _, stats = await api.get("/stats")
            if stats["skipped"]:
                break
            await asyncio.sleep(0.05)
        assert (stats["skipped"], stats["rewards_learned"], stats["pending_joins"]) == (1, 0, 0)
    finally:
        await stop_api(api)


async def test_health_models_and_stats(api: Api) -> None:
    assert await api.get("/healthz") == (200, {"status": "ok"})
    status, catalog = await api.get("/models")
    assert status == 200 and len(catalog["models"]) >= 4
    for m in catalog["models"]:
        assert {"name", "input_price", "output_price", "context_window", "capabilities", "allow_sensitive_data"} <= set(
            m
        )
    status, _ = await api.get("/nowhere")
    assert status == 404


KINDS = {
    "code": [
        "Write a Python function to parse {} from a CSV file",
        "Fix this JavaScript bug in {} handler",
        "Implement a binary search over {} in Rust",
    ],
    "chat": [
        "What is a good name for a cat who loves {}?",
        "Tell me something nice about {}",
        "How do I say thank you for the {} in French?",
    ],
}
NOUNS = ["apples", "invoices", "dates", "users", "orders", "songs", "trees", "planets"]


async def test_learning_shifts_selection_toward_the_right_model_per_kind(api: Api) -> None:
    """1,000 routes; code is rewarded on codestral, chat on gpt-4o-mini: each kind's share must move."""
    best = {"code": "codestral", "chat": "gpt-4o-mini"}
    share: dict[str, list[int]] = {kind: [0, 0] for kind in KINDS}  # [hits in first 40, hits in last 200]
    import random

    rng = random.Random(7)
    for i in range(1000):
        kind = "code" if i % 2 else "chat"
        query = rng.choice(KINDS[kind]).format(rng.choice(NOUNS))
        _, d = await api.post("/route", {"query": query})
        hit = d["model"] == best[kind]
        if i < 40:
            share[kind][0] += hit
        elif i >= 800:
            share[kind][1] += hit
        await api.post("/reward", {"event_id": d["event_id"], "quality": 1.0 if hit else 0.0, "cost_usd": 0.0})
    for kind, (early, late) in share.items():
        # Chance is 1/8; the right model must dominate the last 100 routes of its kind.
        assert late / 100 >= 0.6, (kind, early, late)
        assert late / 100 > early / 20 + 0.15, (kind, early, late)
