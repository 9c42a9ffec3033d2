"""The multi-process mode: serving processes log, one learner joins and learns, snapshots flow back.

Correctness only (speed is `make bench`'s business): a reward sent to any serving process is
learned, and every serving process picks up the learner's snapshots.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from banditroute.config import Config, default_config_text
from banditroute.http.app import create_app
from banditroute.service.learner import Learner
from banditroute.service.serving import ServingService
from tests.conftest import ROOT, Api, free_port, make_config, stop_api
from tools.launch import wait_healthy_async

CODE = {"query": "Write a Python function that merges two sorted lists", "metadata": {"capabilities": ["code"]}}


async def test_a_reward_sent_to_another_serving_process_is_learned_and_snapshots_reach_every_server(
    tmp_path: Path,
) -> None:
    # The serving processes take snapshots when told to (reload_snapshot below), not in the background.
    config = make_config(tmp_path, cluster={"publish_interval_s": 0.01, "reload_interval_s": 3600.0})
    a = await start_serving(config)
    b = await start_serving(config)
    learner = Learner(config)
    try:
        events = []
        for _i in range(30):
            status, d = await a.post("/route", CODE)
            assert status == 200
            events.append(d)
        for _i, d in enumerate(events):  # every reward goes to the *other* process
            quality = 1.0 if d["model"] == "codestral" else 0.0
            status, answer = await b.post(
                "/reward", {"event_id": d["event_id"], "quality": quality, "cost_usd": 0.0001}
            )
            assert status == 202 and answer == {"event_id": d["event_id"], "status": "pending", "stored": True}
        status, body = await b.post("/reward", {"event_id": "f" * 32, "quality": 1.0})
        assert status == 404 and body["error"]["code"] == "unknown_event"

        assert learner.step() == 30  # the learner read the log and learned every join
        rows = (
            sqlite3.connect(config.server.data_dir + "/banditroute.db")
            .execute("SELECT count(*), count(vw_cost) FROM learned")
            .fetchone()
        )
        assert rows == (30, 30)

        for api in (a, b):
            assert (await api.get("/stats"))[1]["policy_learned_seq"] == 0
            await api.service.reload_snapshot()
            assert (await api.get("/stats"))[1]["policy_learned_seq"] == 30
        _, d = await a.post("/route", CODE)
        assert d["pmf"]["codestral"] > max(p for m, p in d["pmf"].items() if m != "codestral")

        # A late part for a learned event is stored and says so; the learner does not learn it again.
        status, answer = await a.post("/reward", {"event_id": events[0]["event_id"], "quality": 0.5})
        assert status == 202 and answer["status"] == "late"
        assert learner.step() == 0
    finally:
        learner.close()
        await stop_api(a)
        await stop_api(b)


async def test_a_restarted_learner_waits_again_for_pending_decisions(tmp_path: Path) -> None:
    config = make_config(tmp_path, cluster={"publish_interval_s": 0.01})
    api = await start_serving(config)
    try:
        first = Learner(config)
        _, d1 = await api.post("/route", CODE)
        _, d2 = await api.post("/route", CODE)
        await api.post("/reward", {"event_id": d1["event_id"], "quality": 1.0, "cost_usd": 0.0001})
        assert first.step() == 1
        await api.post("/reward", {"event_id": d2["event_id"], "quality": 0.0})  # cost still missing
        assert first.step() == 0
        first.close()  # the learner stops with d2 pending and one part of it folded in

        second = Learner(config)
        assert second.router.is_pending(d2["event_id"]) and not second.router.is_pending(d1["event_id"])
        await api.post("/reward", {"event_id": d2["event_id"], "cost_usd": 0.0001})
        assert second.step() == 1
        second.close()
    finally:
        await stop_api(api)


async def test_an_operator_change_made_on_one_process_reaches_the_others_and_the_learner(tmp_path: Path) -> None:
    key = "cluster admin key"
    config = make_config(tmp_path, admin={"key_sha256": hashlib.sha256(key.encode()).hexdigest()})
    a = await start_serving(config)
    b = await start_serving(config)
    learner = Learner(config)
    try:
        status, _, _ = await a.raw(
            "POST", "/admin/weights", json={"cost_weight": 0.7}, headers={"Authorization": f"Bearer {key}"}
        )
        assert status == 200
        learner.step()
        await b.service.follow_learner()
        assert learner.router.config.reward.cost_weight == 0.7  # the rewards it learns use the new weight
        assert b.service.router.config.reward.cost_weight == 0.7
        assert b.service.stats()["cost_weight"] == 0.7
    finally:
        learner.close()
        await stop_api(a)
        await stop_api(b)


async def start_serving(config: Config) -> Api:
    """A serving-role process's app on loopback (the multi-process mode's server, in this process)."""
    server = TestServer(create_app(config, kind=ServingService), host="127.0.0.1")
    await server.start_server()
    return Api(server, aiohttp.ClientSession())


async def test_serve_with_two_workers_shares_the_port_and_learns_from_rewards_to_either(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(default_config_text() + "\n[cluster]\npublish_interval_s = 0.2\nreload_interval_s = 0.1\n")
    data_dir = tmp_path / "var"
    log = open(tmp_path / "cluster.log", "ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "banditroute.cli",
            "serve",
            "--workers",
            "2",
            "--config",
            str(config),
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # A new connection per request, so the kernel spreads them over both processes.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            await wait_healthy(session, url)
            acked = []
            for i in range(60):
                async with session.post(url + "/route", json={"query": f"question {i % 5}"}) as resp:
                    assert resp.status == 200
                    event_id = (await resp.json())["event_id"]
                async with session.post(
                    url + "/reward", json={"event_id": event_id, "quality": 1.0, "cost_usd": 0.0001}
                ) as resp:
                    assert resp.status == 202
                    acked.append(event_id)
            db = sqlite3.connect(data_dir / "banditroute.db")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                learned = {r[0] for r in db.execute("SELECT event_id FROM learned WHERE vw_cost IS NOT NULL")}
                if learned >= set(acked):
                    break
                await asyncio.sleep(0.1)
            assert learned >= set(acked)

            seen: dict[int, dict] = {}
            while time.monotonic() < deadline and (
                len(seen) < 2 or any(s["policy_learned_seq"] < len(acked) for s in seen.values())
            ):
                async with session.get(url + "/stats") as resp:
                    stats = await resp.json()
                seen[stats["pid"]] = stats
                await asyncio.sleep(0.02)
            assert len(seen) == 2, "both serving processes answer on the shared port"
            assert all(s["role"] == "serving" and s["policy_learned_seq"] >= len(acked) for s in seen.values())
            assert sum(s["decisions"] for s in seen.values()) == 60
            assert all(s["feedback_parts"] > 0 for s in seen.values()), "rewards reached both processes"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


async def wait_healthy(session: aiohttp.ClientSession, url: str) -> None:
    await wait_healthy_async(url, timeout_s=15.0)
