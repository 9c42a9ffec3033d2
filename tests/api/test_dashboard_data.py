"""GET /dashboard/data's per-model table against /stats on a real server, and after a restart from its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_config, start_api, stop_api

QUALITY = {"gpt-4.1": 0.9, "claude-sonnet-4": 0.9, "claude-opus-4": 0.95}


async def test_the_per_model_table_agrees_with_stats_and_survives_a_restart(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    api = await start_api(config)
    sent: dict[str, list[float]] = {}
    try:
        for i in range(40):
            _, d = await api.post("/route", {"query": f"Question {i}: how do tides work?", "metadata": {"task": "qa"}})
            quality = QUALITY.get(d["model"], 0.5)
            body = {"event_id": d["event_id"], "quality": quality, "cost_usd": 0.002}
            assert (await api.post("/reward", body))[0] == 202
            sent.setdefault(d["model"], []).append(quality)
        _, stats = await api.get("/stats")
        _, dash = await api.get("/dashboard/data")
    finally:
        await stop_api(api)
    table = {r["model"]: r for r in dash["per_model"]}
    assert list(table) == [m.name for m in config.models]
    for model, row in table.items():
        assert row["share"] == pytest.approx(stats["selection_share"].get(model, 0.0))
        assert row["rewards"] == stats["rewards_per_model"][model] == len(sent.get(model, []))
        if model in sent:
            assert row["mean_quality"] == pytest.approx(sum(sent[model]) / len(sent[model]))
            assert row["cost_per_1k"] == pytest.approx(2.0)
        else:
            assert (row["decisions"], row["mean_quality"], row["cost_per_1k"]) == (0, None, None)
    api = await start_api(config)  # a restart rebuilds the table from the log
    try:
        _, again = await api.get("/dashboard/data")
    finally:
        await stop_api(api)
    assert again["per_model"] == dash["per_model"]
