"""Budget and quality targets at run time (issue 17): /admin/weights sets and clears them, each change is
logged and survives a restart, bad input changes nothing, /stats and /metrics show the controller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.api.test_admin import admin_config, call, store_rows
from tests.conftest import Api, start_api, stop_api


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"target_cost_per_1k": 0}, "invalid_target_cost_per_1k"),
        ({"target_cost_per_1k": -3}, "invalid_target_cost_per_1k"),
        ({"target_cost_per_1k": "2"}, "invalid_target_cost_per_1k"),
        ({"target_quality": 1}, "invalid_target_quality"),
        ({"target_quality": 0}, "invalid_target_quality"),
        ({"target_quality": True}, "invalid_target_quality"),
        ({"target_cost_per_1k": 2, "target_quality": 0.8}, "conflicting_targets"),
        ({"target_budget": 2}, "unknown_field"),
    ],
)
async def test_bad_targets_are_refused_and_change_nothing(tmp_path: Path, body: Any, code: str) -> None:
    api = await start_api(admin_config(tmp_path))
    try:
        status, answer = await call(api, "POST", "/admin/weights", body)
        assert (status, answer["error"]["code"]) == (400, code)
        _, settings = await call(api, "GET", "/admin/settings")
        assert (settings["target_cost_per_1k"], settings["target_quality"], settings["target"]) == (None, None, None)
        assert await store_rows(api, "SELECT * FROM config_changes") == []
    finally:
        await stop_api(api)


async def route_and_reward(api: Api, n: int) -> None:
    for i in range(n):
        _, d = await api.post("/route", {"query": f"Summarise the plot of play number {i}"})
        await api.post("/reward", {"event_id": d["event_id"], "quality": 0.8, "input_tokens": 40, "output_tokens": 300})


async def test_a_budget_set_at_run_time_moves_the_weight_is_logged_and_survives_a_restart(tmp_path: Path) -> None:
    config = admin_config(tmp_path)
    api = await start_api(config)
    try:
        status, settings = await call(api, "POST", "/admin/weights", {"target_cost_per_1k": 0.05})
        assert status == 200
        assert (settings["target_cost_per_1k"], settings["target_quality"]) == (0.05, None)
        assert settings["target"]["kind"] == "cost_per_1k" and settings["cost_weight"] == 0.1  # starts from it
        await route_and_reward(api, 40)
        _, stats = await api.get("/stats")
        target = stats["target"]
        assert target["measured_cost_per_1k_usd"] > 0.05  # the bundled catalog's models cost more than $0.05 per 1k
        assert stats["cost_weight"] > 0.1 and stats["cost_weight"] == target["cost_weight"]
        weights = await store_rows(api, "SELECT DISTINCT cost_weight FROM learned")
        assert len(weights) > 10  # each learned row names the weight it was learned under
        _, _, raw = await api.raw("GET", "/metrics")
        metrics = raw.decode()
        assert "banditroute_target_cost_per_1k_usd 0.05" in metrics
        assert "banditroute_target_quality NaN" in metrics
        assert f"banditroute_cost_weight {stats['cost_weight']}" in metrics
        changes = await store_rows(api, "SELECT kind, payload FROM config_changes ORDER BY seq")
        assert [(k, orjson.loads(p)["target_cost_per_1k"]) for k, p in changes] == [("weights", 0.05)]
        _, dash = await api.get("/dashboard/data")  # the dashboard's target panel reads this
        assert dash["settings"]["target"]["target"] == 0.05
    finally:
        await stop_api(api)
    api = await start_api(config)  # the target is replayed at start
    try:
        _, settings = await call(api, "GET", "/admin/settings")
        assert settings["target_cost_per_1k"] == 0.05 and settings["target"]["kind"] == "cost_per_1k"
        status, settings = await call(api, "POST", "/admin/weights", {"target_quality": 0.7})
        assert (settings["target_cost_per_1k"], settings["target_quality"]) == (None, 0.7)
        held = settings["cost_weight"]
        status, settings = await call(api, "POST", "/admin/weights", {"target_quality": None})
        assert status == 200 and settings["target"] is None and settings["cost_weight"] == held
        changes = await store_rows(api, "SELECT payload FROM config_changes ORDER BY seq")
        previous = orjson.loads(changes[-1][0])["previous"]
        assert previous["target_quality"] == 0.7
    finally:
        await stop_api(api)
