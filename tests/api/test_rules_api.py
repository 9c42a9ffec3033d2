"""Rules, cooldowns and catalog reloads through the real service on loopback, with a real SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import random
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest

from banditroute.config import load_config
from banditroute.types import ModelSpec
from tests.conftest import Api, config_text, make_config, start_api, stop_api
from tests.support.fake_upstream import Behaviour, FakeUpstream

ONPREM_2 = """
[[models]]
name = "mistral-small-onprem"
input_price = 0.0
output_price = 0.0
context_window = 32000
capabilities = ["tools", "json_mode"]
allow_sensitive_data = true
"""
NEW_MODEL = """
[[models]]
name = "frontier-2"
input_price = 1.0
output_price = 4.0
context_window = 400000
capabilities = ["tools", "code", "vision"]
"""
SENSITIVE_OK = {"llama-3.1-8b-onprem", "mistral-small-onprem"}


def write_config(tmp_path: Path, extra: str = "", rules: str | None = None) -> Path:
    """The bundled config with data under tmp_path, its [rules] replaced by `rules`, plus extra [[models]]."""
    text = config_text(rules).replace(
        'data_dir = "var"\n',
        f'data_dir = "{tmp_path / "var"}"\ncheckpoint_interval_s = 3600.0\nexpire_interval_s = 0.05\n',
        1,
    )
    text = text.replace('key_sha256 = ""', f'key_sha256 = "{hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}"', 1)
    path = tmp_path / "config.toml"
    path.write_text(text + extra)
    return path


ADMIN_KEY = "rules-test-admin-key"


async def reload(api: Api) -> tuple[int, Any]:
    """POST /admin/reload with the admin key."""
    status, _, body = await api.raw("POST", "/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    return status, orjson.loads(body)


async def start_from(path: Path) -> Api:
    return await start_api(load_config(path), config_path=path)


EMAIL_QUERIES = [
    "Please draft a reply to maria.gonzalez@northwind-traders.de about the delayed invoice",
    "my email is j.smith1987@gmail.com, can you reset my password?",
    "Forward the contract to legal+contracts@acme-industries.co.uk before Friday",
    "Summarise this thread: From: Tom Baker <tom.baker@fastmail.fm> Subject: Q3 numbers",
    "Write a polite note to olga_petrova@yandex.ru declining the meeting",
]


async def test_a_thousand_routes_with_an_email_never_reach_a_disallowed_model(tmp_path: Path) -> None:
    api = await start_from(write_config(tmp_path, ONPREM_2))
    rng = random.Random(11)
    seen = set()

    async def one(i: int) -> None:
        meta = rng.choice([{}, {"user_tier": "pro"}, {"conversation_id": f"c{i % 13}"}, {"task": "email"}])
        status, d = await api.post("/route", {"query": rng.choice(EMAIL_QUERIES), "metadata": meta})
        assert status == 200, d
        assert d["model"] in SENSITIVE_OK and set(d["pmf"]) <= SENSITIVE_OK and set(d["fallbacks"]) <= SENSITIVE_OK
        assert all(rule == "data_policy" for rule in d["excluded"].values())
        assert "data_policy(detected email)" in d["reason"]
        seen.add(d["model"])
        # Reward the allowed choice as worthless: learning must not open the rail.
        await api.post("/reward", {"event_id": d["event_id"], "quality": 0.0, "cost_usd": 0.0})

    try:
        for batch in range(0, 1000, 50):  # 50 clients at a time: the log commits them in groups
            await asyncio.gather(*(one(i) for i in range(batch, batch + 50)))
        assert seen == SENSITIVE_OK  # the bandit still chose between the two allowed models
        # The tag overrides detection both ways.
        _, d = await api.post("/route", {"query": EMAIL_QUERIES[0], "metadata": {"sensitive": False}})
        assert "data_policy" not in d["reason"] and len(d["pmf"]) > 2
        _, d = await api.post("/route", {"query": "what is 2 + 2?", "metadata": {"sensitive": True}})
        assert set(d["pmf"]) <= SENSITIVE_OK and "data_policy(tagged)" in d["reason"]
    finally:
        await stop_api(api)
    # The log keeps each decision's reason.
    import sqlite3

    db = sqlite3.connect(tmp_path / "var" / "banditroute.db")
    reasons = [r for (r,) in db.execute("SELECT reason FROM decisions")]
    assert sum("data_policy(detected email)" in r for r in reasons) == 1000


async def test_pii_detection_can_be_turned_off(tmp_path: Path) -> None:
    api = await start_from(write_config(tmp_path, rules="[rules]\npii_detection = false\n"))
    try:
        _, d = await api.post("/route", {"query": EMAIL_QUERIES[1]})
        assert "data_policy" not in d["reason"] and len(d["pmf"]) == 8
    finally:
        await stop_api(api)


async def test_a_failing_model_cools_down_visibly_and_returns(tmp_path: Path) -> None:
    rules = (
        "[rules]\ncooldown_failures = 3\ncooldown_window_s = 60\ncooldown_s = 1.0\n"
        '[rules.tiers]\nt = ["gpt-4o-mini", "codestral"]\n'
    )
    api = await start_from(write_config(tmp_path, rules=rules))
    meta = {"user_tier": "t"}
    try:
        failures = 0
        for i in range(300):
            _, d = await api.post("/route", {"query": f"question {i}", "metadata": meta})
            if d["model"] == "codestral":
                status, a = await api.post(
                    "/reward", {"event_id": d["event_id"], "error": "timeout", "source": "system"}
                )
                # A failure is learned at once, as quality 0 (minus the estimated cost).
                assert (status, a["status"]) == (202, "learned") and a["reward"] <= 0.0
                failures += 1
                if failures == 3:
                    break
        _, stats = await api.get("/stats")
        assert set(stats["cooldowns"]) == {"codestral"} and 0 < stats["cooldowns"]["codestral"] <= 1.0
        for i in range(20):
            _, d = await api.post("/route", {"query": f"during {i}", "metadata": meta})
            assert d["model"] == "gpt-4o-mini" and d["excluded"] == {
                "gpt-4.1-nano": "tier",
                "claude-3-5-haiku": "tier",
                "gpt-4.1": "tier",
                "claude-sonnet-4": "tier",
                "claude-opus-4": "tier",
                "llama-3.1-8b-onprem": "tier",
                "codestral": "cooldown",
            }
            assert d["fallbacks"] == []
        await asyncio.sleep(1.05)
        _, stats = await api.get("/stats")
        assert stats["cooldowns"] == {} and stats["cooldowns_started"] == 1
        _, d = await api.post("/route", {"query": "after", "metadata": meta})
        assert set(d["pmf"]) == {"gpt-4o-mini", "codestral"}
    finally:
        await stop_api(api)


async def test_reload_adds_changes_and_removes_models_without_losing_the_policy(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    api = await start_from(path)
    try:
        for i in range(30):
            _, d = await api.post("/route", {"query": f"warm up {i}"})
            await api.post("/reward", {"event_id": d["event_id"], "quality": 0.7, "cost_usd": 0.0})
        probe = {"query": "probe: how do I reverse a linked list?", "metadata": {"user_tier": "x"}}
        _, before = await api.post("/route", probe)
        pending = before  # answered after the reload
        weights = api.service.router.policy.serialize()
        counts = (await api.get("/stats"))[1]["rewards_per_model"]

        # A broken file is refused and nothing changes.
        good = path.read_text()
        path.write_text(good + "\n[rules.tiers]\nfree = ['no-such-model']\n")
        status, err = await reload(api)
        assert (status, err["error"]["code"]) == (400, "invalid_config") and "no-such-model" in err["error"]["message"]
        assert len((await api.get("/models"))[1]["models"]) == 8

        new_text = (
            good.replace('name = "claude-opus-4"', 'name = "claude-opus-4-retired"', 1).replace(
                "input_price = 0.15\noutput_price = 0.60", "input_price = 0.30\noutput_price = 1.20", 1
            )
            + NEW_MODEL
        )
        # The retired name would be a new model: drop that entry instead.
        start = new_text.index('[[models]]\nname = "claude-opus-4-retired"')
        end = new_text.index("[[models]]", start + 1)
        path.write_text(new_text[:start] + new_text[end:])
        status, summary = await reload(api)
        assert status == 200, summary
        assert (summary["added"], summary["removed"], summary["changed"]) == (
            ["frontier-2"],
            ["claude-opus-4"],
            ["gpt-4o-mini"],
        )
        models = {m["name"]: m for m in (await api.get("/models"))[1]["models"]}
        assert "frontier-2" in models and "claude-opus-4" not in models
        assert models["gpt-4o-mini"]["output_price"] == 1.20

        # The policy was kept: the learned weights are the same bytes, the reward counts the same.
        assert api.service.router.policy.serialize() == weights
        _, stats = await api.get("/stats")
        assert stats["rewards_learned"] == 30
        assert {m: n for m, n in stats["rewards_per_model"].items() if m in counts} == {
            m: n for m, n in counts.items() if m != "claude-opus-4"
        }
        _, after = await api.post("/route", probe)
        assert after["pmf"]["frontier-2"] >= 0.05  # cold start: explored on purpose
        assert "frontier-2" in stats["cold_start"] and stats["catalog_reloads"] == 1

        # A decision made before the reload still learns; the removed model is never routed again.
        _, a = await api.post("/reward", {"event_id": pending["event_id"], "quality": 1.0, "cost_usd": 0.0})
        assert a["status"] == "learned"
        for i in range(200):
            _, d = await api.post("/route", {"query": f"after reload {i}", "metadata": {"capabilities": ["vision"]}})
            assert "claude-opus-4" not in d["pmf"] and "claude-opus-4" not in d["fallbacks"]
    finally:
        await stop_api(api)


async def test_sighup_reloads_the_catalog(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    api = await start_from(path)
    try:
        if signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, signal.SIG_IGN, None):
            pytest.fail("the service installed no SIGHUP handler (sending the signal would end the test run)")
        path.write_text(path.read_text() + NEW_MODEL)
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            _, catalog = await api.get("/models")
            if any(m["name"] == "frontier-2" for m in catalog["models"]):
                break
            await asyncio.sleep(0.02)
        assert any(m["name"] == "frontier-2" for m in catalog["models"])
    finally:
        await stop_api(api)


async def test_escalation_returns_a_stronger_model(tmp_path: Path) -> None:
    api = await start_from(write_config(tmp_path))
    try:
        _, catalog = await api.get("/models")
        price = {m["name"]: m["output_price"] for m in catalog["models"]}
        _, d = await api.post("/route", {"query": "hard proof", "escalate_from": "gpt-4o-mini"})
        assert price[d["model"]] > price["gpt-4o-mini"] and "escalation(stronger than gpt-4o-mini)" in d["reason"]
        assert all(price[m] > price["gpt-4o-mini"] for m in d["pmf"])
        status, err = await api.post("/route", {"query": "x", "escalate_from": "claude-opus-4"})
        assert (status, err["error"]["code"]) == (422, "no_model_allowed") and "escalation" in err["error"]["message"]
        status, err = await api.post("/route", {"query": "x", "escalate_from": "gpt-9"})
        assert (status, err["error"]["code"]) == (400, "invalid_escalate_from")
    finally:
        await stop_api(api)
    off = await start_from(write_config(tmp_path, rules="[rules]\nescalation = false\n"))
    try:
        status, err = await off.post("/route", {"query": "x", "escalate_from": "gpt-4o-mini"})
        assert (status, err["error"]["code"]) == (400, "escalation_disabled")
    finally:
        await stop_api(off)


async def test_spend_and_latencies_survive_a_restart(tmp_path: Path) -> None:
    path = write_config(tmp_path, rules="[rules]\nlatency_min_samples = 2\n[rules.budgets]\nacme = 0.01\n")
    api = await start_from(path)
    try:
        for i in range(2):
            _, d = await api.post("/route", {"query": "hi", "metadata": {"tenant": "acme"}})
            await api.post(
                "/reward", {"event_id": d["event_id"], "quality": 1.0, "cost_usd": 0.006, "latency_ms": 100.0 * (i + 1)}
            )
        _, d = await api.post("/route", {"query": "hi", "metadata": {"tenant": "acme"}})
        assert "budget" in d["excluded"].values()
        _, before = await api.get("/stats")
    finally:
        await stop_api(api)
    api = await start_from(path)
    try:
        _, stats = await api.get("/stats")
        assert stats["budgets"]["acme"]["spent_usd"] == pytest.approx(0.012)
        assert stats["latency"] == before["latency"] and sum(v["samples"] for v in stats["latency"].values()) == 2
        _, d = await api.post("/route", {"query": "hi", "metadata": {"tenant": "acme"}})
        assert "budget" in d["excluded"].values()
    finally:
        await stop_api(api)


async def test_no_model_left_is_a_422_naming_the_rule_or_the_default_model(tmp_path: Path) -> None:
    api = await start_from(write_config(tmp_path, rules='[rules.tiers]\nfree = ["gpt-4o-mini"]\n'))
    try:
        status, err = await api.post(
            "/route", {"query": "x", "metadata": {"user_tier": "free", "capabilities": ["code"]}}
        )
        assert (status, err["error"]["code"]) == (422, "no_model_allowed") and "'tier'" in err["error"]["message"]
    finally:
        await stop_api(api)
    rules = '[rules]\non_empty = "default"\ndefault_model = "gpt-4o-mini"\n[rules.tiers]\nfree = ["gpt-4o-mini"]\n'
    api = await start_from(write_config(tmp_path, rules=rules))
    try:
        status, d = await api.post(
            "/route", {"query": "x", "metadata": {"user_tier": "free", "capabilities": ["code"]}}
        )
        assert (status, d["model"], d["probability"]) == (200, "gpt-4o-mini", 1.0)
        assert "default model (rule tier left no model)" in d["reason"]
    finally:
        await stop_api(api)


async def test_the_proxy_skips_a_model_in_cooldown(tmp_path: Path) -> None:
    """Upstream b always fails: its failures cool it down, then the proxy neither routes to it nor falls back on it."""
    upstream = FakeUpstream(behaviours={"up-b": Behaviour(status=500)})
    await upstream.start()
    # The VW reward learner with a cold-start floor: b keeps being tried until it cools down.
    cfg = make_config(
        tmp_path,
        rules={"cooldown_failures": 3, "cooldown_s": 3600.0, "cold_start_share": 0.3},
        policy={"exploration": "squarecb"},
    )
    cfg = dataclasses.replace(
        cfg,
        models=tuple(
            ModelSpec(n, 1.0, 3.0, 100_000, base_url=upstream.base_url, upstream_model=f"up-{n}") for n in "abc"
        ),
    )
    api = await start_api(cfg)
    body = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
    try:
        for _ in range(200):
            status, answer = await api.post("/v1/chat/completions", body)
            assert status == 200, answer  # a fallback serves every failure of b
            if "b" in (await api.get("/stats"))[1]["cooldowns"]:
                break
        assert (await api.get("/stats"))[1]["cooldowns_started"] == 1
        tried_b = sum(r.get("model") == "up-b" for r in upstream.requests)
        assert tried_b >= 3
        for _i in range(30):
            status, _ = await api.post("/v1/chat/completions", body)
            assert status == 200
        assert sum(r.get("model") == "up-b" for r in upstream.requests) == tried_b
    finally:
        await stop_api(api)
        await upstream.close()
