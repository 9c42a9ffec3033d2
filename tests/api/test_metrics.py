"""GET /metrics: every metric the issue names is exposed, and moves when the router does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Api, make_config, start_api, stop_api

# Every family the issue names, as Prometheus exposes it (counters gain `_total`).
FAMILIES = {
    "banditroute_decisions": "counter",
    "banditroute_explored_decisions": "counter",
    "banditroute_exploration_share": "gauge",
    "banditroute_rewards_learned": "counter",
    "banditroute_reward": "summary",
    "banditroute_quality": "histogram",
    "banditroute_cost_usd": "histogram",
    "banditroute_latency_seconds": "histogram",
    "banditroute_feedback_parts": "counter",
    "banditroute_defaults_applied": "counter",
    "banditroute_skipped_joins": "counter",
    "banditroute_late_feedback_parts": "counter",
    "banditroute_expired_joins": "counter",
    "banditroute_pending_joins": "gauge",
    "banditroute_write_queue": "gauge",
    "banditroute_learner_lag_seconds": "histogram",
    "banditroute_route_seconds": "histogram",
    "banditroute_rule_exclusions": "counter",
    "banditroute_no_model_allowed": "counter",
    "banditroute_cooldowns": "counter",
    "banditroute_cost_weight": "gauge",
    "banditroute_latency_weight": "gauge",
    "banditroute_exploration_paused": "gauge",
    "banditroute_shadow_mode": "gauge",
}


async def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, body = await api.raw("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def test_every_metric_is_exposed_with_its_type_and_per_model_series(api: Api) -> None:
    status, _, body = await api.raw("GET", "/metrics")
    families = {f.name: f.type for f in text_string_to_metric_families(body.decode())}
    assert {k: families.get(k) for k in FAMILIES} == FAMILIES
    samples = await scrape(api)
    _, catalog = await api.get("/models")
    for model in (m["name"] for m in catalog["models"]):  # zeros from the start, not gaps
        assert ("banditroute_decisions_total", (("model", model),)) in samples
        assert ("banditroute_reward_count", (("model", model),)) in samples
    assert value(samples, "banditroute_cost_weight") == 0.1


async def test_metrics_move_with_decisions_feedback_rules_and_expiry(tmp_path: Path) -> None:
    # default_quality set (the default is unset since issue 14) so that expired joins apply it and count it.
    api = await start_api(make_config(tmp_path, reward={"reward_wait_s": 0.3, "default_quality": 0.5}))
    try:
        before = await scrape(api)
        routed = []
        for i in range(12):
            _, d = await api.post(
                "/route", {"query": f"Write a Python function number {i}", "metadata": {"capabilities": ["code"]}}
            )
            routed.append(d)
        status, _ = await api.post("/route", {"query": "x", "metadata": {"capabilities": ["teleportation"]}})
        assert status == 422
        first = routed[0]
        await api.post(
            "/reward",
            {"event_id": first["event_id"], "quality": 0.9, "latency_ms": 1200, "cost_usd": 0.002, "source": "judge"},
        )
        mid = await scrape(api)
        assert total(mid, "banditroute_decisions_total") - total(before, "banditroute_decisions_total") == 12
        assert value(mid, "banditroute_decisions_total", model=first["model"]) >= 1
        assert value(mid, "banditroute_pending_joins") == 11
        assert value(mid, "banditroute_rewards_learned_total", model=first["model"]) == 1
        assert value(mid, "banditroute_reward_sum", model=first["model"]) == pytest.approx(0.9 - 0.1 * 0.002 / 0.001)
        assert value(mid, "banditroute_quality_sum", model=first["model"]) == pytest.approx(0.9)
        assert value(mid, "banditroute_cost_usd_sum", model=first["model"]) == pytest.approx(0.002)
        assert value(mid, "banditroute_latency_seconds_sum", model=first["model"]) == pytest.approx(1.2)
        assert value(mid, "banditroute_feedback_parts_total", source="judge") == 1
        # the capability rule excluded the models without "code" from 12 requests, and refused one
        _, catalog = await api.get("/models")
        without_code = sum("code" not in m["capabilities"] for m in catalog["models"])
        assert value(mid, "banditroute_rule_exclusions_total", rule="capabilities") == 12 * without_code + len(
            catalog["models"]
        )
        assert value(mid, "banditroute_no_model_allowed_total", rule="capabilities") == 1
        assert value(mid, "banditroute_route_seconds_count") == 12
        explored = total(mid, "banditroute_explored_decisions_total")
        assert value(mid, "banditroute_exploration_share") == explored / 12

        await asyncio.sleep(0.6)  # the other 11 expire and are learned with defaults
        after = await scrape(api)
        assert value(after, "banditroute_pending_joins") == 0
        assert value(after, "banditroute_expired_joins_total") == 11
        assert value(after, "banditroute_defaults_applied_total", part="quality") == 11
        assert total(after, "banditroute_rewards_learned_total") == 12
        assert value(after, "banditroute_learner_lag_seconds_count") == 12
        assert value(after, "banditroute_learner_lag_seconds_sum") >= 11 * 0.3
        await api.post("/reward", {"event_id": routed[5]["event_id"], "quality": 1.0})
        late = await scrape(api)
        assert value(late, "banditroute_late_feedback_parts_total") == 1
        assert total(late, "banditroute_rewards_learned_total") == 12  # a late part is not learned
    finally:
        await stop_api(api)


async def test_cooldown_metrics_move_when_a_model_fails_into_a_cooldown(tmp_path: Path) -> None:
    api = await start_api(
        make_config(tmp_path, rules={"tiers": {"solo": ("gpt-4o-mini",)}, "cooldown_failures": 3, "cooldown_s": 3600.0})
    )
    try:
        before = await scrape(api)
        assert value(before, "banditroute_models_in_cooldown") == 0
        for i in range(3):
            _, d = await api.post("/route", {"query": f"q{i}", "metadata": {"user_tier": "solo"}})
            assert d["model"] == "gpt-4o-mini"
            await api.post("/reward", {"event_id": d["event_id"], "error": "timeout", "source": "system"})
        after = await scrape(api)
        assert value(after, "banditroute_cooldowns_total", model="gpt-4o-mini") == 1
        assert total(after, "banditroute_cooldowns_total") == 1
        assert value(after, "banditroute_models_in_cooldown") == 1
        status, _ = await api.post("/route", {"query": "q", "metadata": {"user_tier": "solo"}})
        assert status == 422
        refused = await scrape(api)
        assert value(refused, "banditroute_no_model_allowed_total", rule="cooldown") == 1
    finally:
        await stop_api(api)
