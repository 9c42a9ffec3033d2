"""kill -9 the real service mid-stream, restart it, and check that nothing acknowledged was lost."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ServerProcess, post


async def test_kill_9_loses_no_acknowledged_feedback_and_no_learning(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    rng = random.Random(3)
    acked: list[tuple[str, float]] = []
    complete: set[str] = set()
    try:
        async with aiohttp.ClientSession() as session:
            await server.start(session)
            for i in range(300):
                status, d = await post(
                    session,
                    server.url + "/route",
                    {"query": f"question {i % 7} about {rng.choice(['code', 'math', 'poems'])}"},
                )
                assert status == 200
                if i % 5 == 4:
                    continue  # never answered: stays pending across the kill
                quality = rng.random()
                status, _ = await post(
                    session, server.url + "/reward", {"event_id": d["event_id"], "quality": quality, "cost_usd": 0.0001}
                )
                assert status == 202
                acked.append((d["event_id"], quality))
                complete.add(d["event_id"])
                if i == 150:
                    await asyncio.sleep(0.5)  # let a checkpoint land mid-stream, so replay covers the rest
            probe = {"query": "probe: how do I reverse a linked list?"}
            _, before = await post(session, server.url + "/route", probe)
            server.kill()

            await server.start(session)
            _, after = await post(session, server.url + "/route", probe)
            async with session.get(server.url + "/stats") as resp:
                stats = await resp.json()
            server.kill()
    finally:
        server.close()

    db = sqlite3.connect(server.data_dir / "banditroute.db")
    stored = dict(db.execute("SELECT event_id, quality FROM feedback").fetchall())
    assert all(stored.get(eid) == q for eid, q in acked), "an acknowledged reward is missing"
    learned = {row[0] for row in db.execute("SELECT event_id FROM learned WHERE vw_cost IS NOT NULL")}
    assert complete <= learned
    assert db.execute("SELECT count(*), count(DISTINCT event_id) FROM decisions").fetchone() == (302, 302)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert stats["rewards_learned"] == len(complete)
    assert stats["pending_joins"] == 300 - len(complete) + 2  # unanswered ones and the two probes
    # The restarted policy is the one that was running: checkpoint + replay reproduce it.
    assert after["pmf"] == pytest.approx(before["pmf"], abs=1e-6)
    assert "replayed" in server.log_text()
