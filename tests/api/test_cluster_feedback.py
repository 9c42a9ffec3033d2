"""Feedback in the multi-process mode and under concurrency (issue 15, defects 1, 3 and 4).

Serving processes and the learner run in this process (each serving app on its own loopback port and
its own connection to the shared log), so the races are real but the test stays fast.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from banditroute.config import Config
from banditroute.http.app import create_app
from banditroute.service.learner import Learner
from banditroute.service.serving import ServingService
from tests.conftest import Api, make_config, start_api, stop_api

CODE = {"query": "Write a Python function that merges two sorted lists", "metadata": {"capabilities": ["code"]}}


async def start_serving(config: Config) -> Api:
    server = TestServer(create_app(config, kind=ServingService), host="127.0.0.1")
    await server.start_server()
    return Api(server, aiohttp.ClientSession())


def _db(config: Config) -> sqlite3.Connection:
    return sqlite3.connect(Path(config.server.data_dir) / "banditroute.db")


async def test_every_decision_and_every_part_answered_pending_is_learned_beyond_max_pending(tmp_path: Path) -> None:
    """5 routes per pending slot, then feedback for each: the learner finishes the overflow with defaults
    (their parts are answered `late`), every part answered `pending` is learned in its join, and a
    restarted learner learns nothing twice."""
    config = make_config(tmp_path, server={"max_pending": 10}, reward={"latency_weight": 0.0})
    api = await start_serving(config)
    learner = Learner(config)
    try:
        events = []
        for _ in range(50):
            status, d = await api.post("/route", CODE)
            assert status == 200
            events.append(d["event_id"])
        learner.step()  # tails the 50: the 40 oldest are pushed out by the bound and finished
        answers = {}
        for eid in events:
            status, answer = await api.post("/reward", {"event_id": eid, "quality": 1.0, "cost_usd": 0.0001})
            assert status == 202
            answers[eid] = answer["status"]
        learner.step()
        learner.close()
        learner = Learner(config)  # a restart takes back nothing already learned
        learner.step()
        rows = dict(_db(config).execute("SELECT event_id, defaulted FROM learned").fetchall())
        n_rows = _db(config).execute("SELECT count(*) FROM learned").fetchone()[0]
        assert n_rows == len(rows) == 50, "every decision learned, each exactly once"
        pending = [eid for eid, s in answers.items() if s == "pending"]
        assert len(pending) == 10 and all("quality" not in rows[eid] for eid in pending)
        assert all(rows[eid] == "quality" for eid, s in answers.items() if s == "late")
    finally:
        learner.close()
        await stop_api(api)


async def _flood(apis: list[Api], event_id: str, n: int) -> list[int]:
    body = {"event_id": event_id, "quality": 0.5}
    results = await asyncio.gather(*(apis[i % len(apis)].post("/reward", body) for i in range(n)))
    return [status for status, _ in results]


async def test_max_parts_per_event_holds_under_1000_concurrent_parts_in_one_process(tmp_path: Path) -> None:
    config = make_config(tmp_path, reward={"max_parts_per_event": 32})
    api = await start_api(config)
    try:
        _, d = await api.post("/route", CODE)
        statuses = await _flood([api], d["event_id"], 1000)
        assert statuses.count(202) == 32 and statuses.count(409) == 968
        stored = _db(config).execute("SELECT count(*) FROM feedback WHERE event_id = ?", (d["event_id"],))
        assert stored.fetchone()[0] == 32
    finally:
        await stop_api(api)


async def test_max_parts_per_event_holds_under_1000_concurrent_parts_over_two_serving_processes(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, reward={"max_parts_per_event": 32})
    a, b = await start_serving(config), await start_serving(config)
    try:
        _, d = await a.post("/route", CODE)
        statuses = await _flood([a, b], d["event_id"], 1000)
        assert statuses.count(202) == 32 and statuses.count(409) == 968
        stored = _db(config).execute("SELECT count(*) FROM feedback WHERE event_id = ?", (d["event_id"],))
        assert stored.fetchone()[0] == 32
    finally:
        await stop_api(a)
        await stop_api(b)


async def test_enqueued_decisions_are_found_by_every_serving_process_right_after_route(tmp_path: Path) -> None:
    """`decision_ack = "enqueue"` with a write linger long enough that no decision is committed when
    its feedback arrives: the feedback is accepted by the process that decided and by another one."""
    config = make_config(tmp_path, server={"decision_ack": "enqueue", "write_linger_ms": 50.0})
    a, b = await start_serving(config), await start_serving(config)
    learner = Learner(config)
    try:
        acked = []
        for i in range(20):
            status, d = await a.post("/route", CODE)
            assert status == 200
            to = a if i % 2 else b
            status, answer = await to.post("/reward", {"event_id": d["event_id"], "quality": 1.0, "cost_usd": 1e-4})
            assert (status, answer["status"]) == (202, "pending"), answer
            acked.append(d["event_id"])
        status, body = await b.post("/reward", {"event_id": "e" * 32, "quality": 1.0})
        assert status == 404 and body["error"]["code"] == "unknown_event"
        learner.step()
        learned = {r[0] for r in _db(config).execute("SELECT event_id FROM learned WHERE vw_cost IS NOT NULL")}
        assert learned == set(acked)
    finally:
        learner.close()
        await stop_api(a)
        await stop_api(b)
