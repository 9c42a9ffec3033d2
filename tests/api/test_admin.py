"""Admin endpoints against a real server: the key, run-time weights, exploit-only, shadow mode, policy files."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Api, make_config, start_api, stop_api

KEY = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADMIN_CALLS = [
    ("GET", "/admin/settings", None),
    ("POST", "/admin/weights", {"cost_weight": 0.5}),
    ("POST", "/admin/exploration", {"paused": True}),
    ("POST", "/admin/shadow", {"baseline": "gpt-4o-mini"}),
    ("GET", "/admin/shadow", None),
    ("POST", "/admin/snapshot", None),
    ("GET", "/admin/policy", None),
    ("POST", "/admin/policy", {"format": "banditroute-policy"}),
    ("POST", "/admin/reload", None),
]


def admin_config(tmp_path: Path, **sections: Any) -> Any:
    return make_config(tmp_path, admin={"key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}, **sections)


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Api]:
    api = await start_api(admin_config(tmp_path))
    yield api
    await stop_api(api)


async def call(
    api: Api, method: str, path: str, body: Any = None, headers: dict[str, str] | None = AUTH
) -> tuple[int, Any]:
    status, _, raw = await api.raw(method, path, json=body, headers=headers)
    return status, orjson.loads(raw)


async def store_rows(api: Api, sql: str) -> list[tuple]:
    await asyncio.sleep(0.05)  # let the write queue drain
    return await api.service.eventlog.call(lambda: api.service.store.conn.execute(sql).fetchall())


# -- the key -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
async def test_admin_is_disabled_without_a_key(api: Api, method: str, path: str, body: Any) -> None:
    status, answer = await call(api, method, path, body)
    assert (status, answer["error"]["code"]) == (403, "admin_disabled")
    assert "BANDITROUTE_ADMIN_KEY" in answer["error"]["message"]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ({"Authorization": KEY}, 401, "unauthorized"),  # no scheme
        ({"Authorization": "Basic " + KEY}, 401, "unauthorized"),
        ({"Authorization": "Bearer " + KEY[:-1]}, 401, "unauthorized"),  # a wrong key is no key: nothing leaks
        ({"Authorization": "Bearer " + KEY + "x"}, 401, "unauthorized"),
    ],
)
async def test_admin_refuses_a_missing_or_wrong_key_and_changes_nothing(
    admin: Api, method: str, path: str, body: Any, headers: Any, status: int, code: str
) -> None:
    got, answer = await call(admin, method, path, body, headers=headers)
    assert (got, answer["error"]["code"]) == (status, code)
    assert KEY not in answer["error"]["message"] and KEY[:-1] not in answer["error"]["message"]
    _, stats = await admin.get("/stats")
    assert (stats["cost_weight"], stats["exploration_paused"], stats["shadow_baseline"]) == (0.1, False, None)


async def test_the_key_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANDITROUTE_ADMIN_KEY", "from-env")
    api = await start_api(make_config(tmp_path))
    try:
        assert (await call(api, "GET", "/admin/settings", headers={"Authorization": "Bearer from-env"}))[0] == 200
        assert (await call(api, "GET", "/admin/settings"))[0] == 401
    finally:
        await stop_api(api)


# -- weights -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "empty_weights"),
        ({"cost_weight": -1}, "invalid_cost_weight"),
        ({"cost_weight": "high"}, "invalid_cost_weight"),
        ({"latency_weight": True}, "invalid_latency_weight"),
        ({"cost_weight": 1e9}, "invalid_cost_weight"),
        ({"cost_weight": 1, "lam": 2}, "unknown_field"),
    ],
)
async def test_bad_weights_are_refused_and_change_nothing(admin: Api, body: Any, code: str) -> None:
    status, answer = await call(admin, "POST", "/admin/weights", body)
    assert (status, answer["error"]["code"]) == (400, code)
    assert (await call(admin, "GET", "/admin/settings"))[1]["cost_weight"] == 0.1
    assert await store_rows(admin, "SELECT * FROM config_changes") == []


async def test_weight_change_applies_to_learning_is_logged_and_survives_restart(tmp_path: Path) -> None:
    config = admin_config(tmp_path)
    api = await start_api(config)
    try:
        _, before = await api.post("/route", {"query": "Summarise the plot of Hamlet"})
        status, settings = await call(api, "POST", "/admin/weights", {"cost_weight": 0.5})
        assert status == 200 and settings == {
            "cost_weight": 0.5,
            "latency_weight": 0.0,
            "exploration_paused": False,
            "shadow_baseline": None,
            "target_cost_per_1k": None,
            "target_quality": None,
            "target": None,
        }
        # a decision made before the change is learned under the weight in force when it is learned
        _, a = await api.post("/reward", {"event_id": before["event_id"], "quality": 0.9, "cost_usd": 0.001})
        assert a["reward"] == pytest.approx(0.9 - 0.5 * 0.001 / 0.001)
        # latency now counts: a join waits for a latency too
        await call(api, "POST", "/admin/weights", {"latency_weight": 0.2})
        _, d = await api.post("/route", {"query": "Summarise the plot of Macbeth"})
        _, a = await api.post("/reward", {"event_id": d["event_id"], "quality": 0.9, "cost_usd": 0.001})
        assert a["status"] == "pending"
        _, a = await api.post("/reward", {"event_id": d["event_id"], "latency_ms": 5000})
        assert a["reward"] == pytest.approx(0.9 - 0.5 * 1 - 0.2 * 5000 / 10_000)
        rows = await store_rows(api, "SELECT cost_weight, latency_weight FROM learned ORDER BY seq")
        assert rows == [(0.5, 0.0), (0.5, 0.2)]
        changes = await store_rows(api, "SELECT kind, payload FROM config_changes ORDER BY seq")
        assert [(k, orjson.loads(p)["cost_weight"], orjson.loads(p)["latency_weight"]) for k, p in changes] == [
            ("weights", 0.5, 0.0),
            ("weights", 0.5, 0.2),
        ]
        _, dash = await api.get("/dashboard/data")
        assert [c["payload"]["latency_weight"] for c in dash["changes"]] == [0.2, 0.0]  # newest first
        _, stats = await api.get("/stats")
        assert (stats["cost_weight"], stats["latency_weight"]) == (0.5, 0.2)
    finally:
        await stop_api(api)
    api = await start_api(config)  # the change survives a restart
    try:
        _, stats = await api.get("/stats")
        assert (stats["cost_weight"], stats["latency_weight"]) == (0.5, 0.2)
        _, dash = await api.get("/dashboard/data")
        assert len(dash["changes"]) == 2
    finally:
        await stop_api(api)


# -- exploit only --------------------------------------------------------------------------------


async def test_paused_exploration_serves_the_argmax_and_logs_a_degenerate_pmf(admin: Api) -> None:
    query = {"query": "Prove that the square root of two is irrational", "metadata": {"task": "math"}}
    _, normal = await admin.post("/route", query)
    best = max(normal["pmf"], key=normal["pmf"].get)
    assert (await call(admin, "POST", "/admin/exploration", {"paused": True}))[1]["exploration_paused"] is True
    for _ in range(20):
        _, d = await admin.post("/route", query)
        assert (d["model"], d["probability"], d["explored"]) == (best, 1.0, False)
        assert sorted(d["pmf"].values()) == [0.0] * (len(d["pmf"]) - 1) + [1.0]
        assert "exploration paused" in d["reason"]
    logged = await store_rows(admin, "SELECT pmf FROM decisions ORDER BY seq DESC LIMIT 20")
    assert all(sorted(orjson.loads(p)) == [0.0] * (len(normal["pmf"]) - 1) + [1.0] for (p,) in logged)
    await call(admin, "POST", "/admin/exploration", {"paused": False})
    probabilities = {(await admin.post("/route", query))[1]["probability"] for _ in range(20)}
    assert probabilities != {1.0}


# -- shadow mode ---------------------------------------------------------------------------------


async def test_shadow_mode_serves_the_baseline_and_reports_match_rate_and_ope(tmp_path: Path) -> None:
    config = admin_config(tmp_path)
    api = await start_api(config)
    baseline = "gpt-4o-mini"
    try:
        for body, code in [
            ({"baseline": "no-such-model"}, "invalid_baseline"),
            ({}, "invalid_baseline"),
            ({"baseline": 3}, "invalid_baseline"),
        ]:
            status, answer = await call(api, "POST", "/admin/shadow", body)
            assert (status, answer["error"]["code"]) == (400, code)
        assert (await call(api, "POST", "/admin/shadow", {"baseline": baseline}))[1]["shadow_baseline"] == baseline
        served = []
        for i in range(30):
            _, d = await api.post("/route", {"query": f"Translate sentence {i} into French"})
            assert (d["model"], d["probability"], d["explored"]) == (baseline, 1.0, False)
            assert re.match(
                rf"shadow: bandit would pick \S+ \(p=0\.\d+\); served baseline {baseline} \(p=1\.000\)", d["reason"]
            )
            served.append(d)
        for i, d in enumerate(served[:20]):
            await api.post("/reward", {"event_id": d["event_id"], "quality": 0.5 + 0.02 * i, "cost_usd": 0.0001})
        # a request the baseline may not serve goes to the bandit, and says so
        _, code = await api.post("/route", {"query": "fix this code", "metadata": {"capabilities": ["code"]}})
        assert code["model"] != baseline and "shadow baseline gpt-4o-mini not allowed" in code["reason"]

        status, summary = await call(api, "GET", "/admin/shadow")
        rows = await store_rows(
            api,
            "SELECT d.chosen, d.shadow_chosen, d.shadow_pmf, l.reward FROM decisions d "
            "LEFT JOIN learned l ON l.event_id = d.event_id "
            "WHERE d.shadow_pmf IS NOT NULL ORDER BY d.seq",
        )
        assert len(rows) == 30
        matched = sum(chosen == shadow for chosen, shadow, _, _ in rows)
        weighted = [(orjson.loads(pmf)[chosen], r) for chosen, _, pmf, r in rows if r is not None]
        assert status == 200 and summary["baseline"] == baseline
        assert (summary["decisions"], summary["matched"], summary["learned"]) == (30, matched, 20)
        assert summary["match_rate"] == pytest.approx(matched / 30)
        assert summary["baseline_value"] == pytest.approx(sum(r for _, r in weighted) / 20)
        assert summary["bandit_ips"]["value"] == pytest.approx(sum(w * r for w, r in weighted) / 20)
        assert summary["bandit_snips"]["value"] == pytest.approx(
            sum(w * r for w, r in weighted) / sum(w for w, _ in weighted)
        )
        assert summary["bandit_ips"]["ci_low"] <= summary["bandit_ips"]["value"] <= summary["bandit_ips"]["ci_high"]
        _, dash = await api.get("/dashboard/data")
        assert dash["shadow"] == summary
        assert dash["recent"][1]["bandit_pick"] is not None
    finally:
        await stop_api(api)
    api = await start_api(config)  # shadow mode and its counts survive a restart
    try:
        _, again = await call(api, "GET", "/admin/shadow")
        assert again == summary
        _, d = await api.post("/route", {"query": "Translate one more sentence"})
        assert d["model"] == baseline
        await call(api, "POST", "/admin/shadow", {"baseline": None})
        _, d = await api.post("/route", {"query": "Translate one more sentence"})
        assert not d["reason"].startswith("shadow")
    finally:
        await stop_api(api)


# -- policy files --------------------------------------------------------------------------------


async def test_a_downloaded_policy_loads_back_and_serves_as_before(tmp_path: Path) -> None:
    # Without the cold-start floor, which depends on reward counts kept outside the policy.
    admin = await start_api(admin_config(tmp_path, rules={"cold_start_share": 0.0}))
    try:
        await download_and_load_back(admin)
    finally:
        await stop_api(admin)


async def download_and_load_back(admin: Api) -> None:
    probe = {"query": "What is the boiling point of water at altitude?"}
    status, headers, raw = await admin.raw("GET", "/admin/policy", headers=AUTH)
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    _, at_download = await admin.post("/route", probe)
    for i in range(40):  # learn enough to move the pmf
        _, d = await admin.post("/route", {"query": f"What is the boiling point of liquid {i}?"})
        await admin.post(
            "/reward",
            {"event_id": d["event_id"], "quality": 1.0 if d["model"] == "gpt-4.1-nano" else 0.0, "cost_usd": 0.0},
        )
    _, moved = await admin.post("/route", probe)
    assert moved["pmf"] != at_download["pmf"]
    status, loaded = await call(admin, "POST", "/admin/policy", orjson.loads(raw))
    assert (
        status == 200 and loaded["sha256"] == hashlib.sha256(base64.b64decode(orjson.loads(raw)["model"])).hexdigest()
    )
    _, restored = await admin.post("/route", probe)
    assert restored["pmf"] == pytest.approx(at_download["pmf"])
    checkpoints = await store_rows(admin, "SELECT sha256 FROM checkpoints ORDER BY seq DESC LIMIT 1")
    assert checkpoints == [(loaded["sha256"],)]  # a restart serves the loaded policy
    kinds = await store_rows(admin, "SELECT kind FROM config_changes")
    assert kinds == [("policy_loaded",)]


async def test_bad_policy_files_are_refused_and_change_nothing(admin: Api) -> None:
    _, _, raw = await admin.raw("GET", "/admin/policy", headers=AUTH)
    good = orjson.loads(raw)
    probe = {"query": "a probe"}
    _, before = await admin.post("/route", probe)
    cases = [
        ({**good, "sha256": "0" * 64}, 400, "invalid_policy"),
        ({**good, "format": "other"}, 400, "invalid_policy"),
        ({**good, "model": "!!!"}, 400, "invalid_policy"),
        ({**good, "vw_args": [*good["vw_args"], "--l2", "0.1"]}, 409, "incompatible_policy"),
    ]
    for body, status, code in cases:
        got, answer = await call(admin, "POST", "/admin/policy", body)
        assert (got, answer["error"]["code"]) == (status, code)
    _, after = await admin.post("/route", probe)
    assert after["pmf"] == before["pmf"]
    assert await store_rows(admin, "SELECT * FROM config_changes") == []


async def test_reload_is_logged_as_an_operator_change(admin: Api) -> None:
    status, summary = await call(admin, "POST", "/admin/reload")
    assert status == 200 and summary["status"] == "reloaded"
    _, dash = await admin.get("/dashboard/data")
    assert [(c["kind"], c["payload"]) for c in dash["changes"]] == [
        ("reload", {"added": [], "removed": [], "changed": []})
    ]
    assert await store_rows(admin, "SELECT kind FROM config_changes") == [("reload",)]


async def test_snapshot_writes_a_checkpoint_now(admin: Api) -> None:
    _, d = await admin.post("/route", {"query": "hello"})
    await admin.post("/reward", {"event_id": d["event_id"], "quality": 1.0, "cost_usd": 0.0})
    status, snap = await call(admin, "POST", "/admin/snapshot")
    assert status == 200 and snap["learned_seq"] == 1
    rows = await store_rows(admin, "SELECT learned_seq, sha256 FROM checkpoints ORDER BY seq DESC LIMIT 1")
    assert rows == [(1, snap["sha256"])]
