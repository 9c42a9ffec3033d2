"""Concurrent routes and rewards, SIGKILL at random points several times: nothing acknowledged is lost.

After the last restart the database must hold every decision and every feedback part the server
acknowledged, each decision once, every completed join learned once, and the running policy must
equal a policy learned from scratch over the stored learned rows in order (checkpoint + replay is
exact). The server runs with auth on (keys from the environment), so rewards carry their tokens,
including tokens handed out before a kill.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from banditroute import decider
from banditroute.catalog import Catalog
from banditroute.config import load_config
from banditroute.features import WordTokens, estimate_tokens, featurize, word_key
from banditroute.router import Router
from banditroute.store.datadir import load_or_create_secret, secret_path
from banditroute.store.sqlite import Store
from tests.conftest import ServerProcess, post

KEY = "crash-test-key-4e1f0a9b7c"
HEADERS = {"Authorization": f"Bearer {KEY}"}
KILLS = 4
WORKERS = 8
PROBE = {"query": "probe: is this policy the one in the log?", "metadata": {"task": "code"}}


class Ledger:
    """What the server acknowledged: decisions (200) and feedback parts (202)."""

    def __init__(self) -> None:
        self.decisions: dict[str, str] = {}  # event_id -> reward_token
        self.parts: list[tuple[str, float | None, float | None]] = []  # event_id, quality, latency_ms
        self.completed: set[str] = set()  # quality and cost both acknowledged
        self.unanswered: list[str] = []  # decisions left pending, for feedback after a restart


async def worker(session: aiohttp.ClientSession, url: str, ledger: Ledger, rng: random.Random) -> None:
    """Route and reward until the server goes away under it."""
    try:
        while True:
            status, d = await post(
                session,
                url + "/route",
                {"query": f"task {rng.randrange(9)} {rng.random()}", "metadata": {"tenant": rng.choice(["a", "b"])}},
                HEADERS,
            )
            if status != 200:
                continue
            ledger.decisions[d["event_id"]] = d["reward_token"]
            await feedback(session, url, ledger, d["event_id"], rng)
    except (TimeoutError, aiohttp.ClientError):
        return


async def feedback(session: aiohttp.ClientSession, url: str, ledger: Ledger, event_id: str, rng: random.Random) -> None:
    token = ledger.decisions[event_id]
    roll = rng.random()
    if roll < 0.2:
        ledger.unanswered.append(event_id)
        return
    if roll < 0.5:  # two parts: latency first, then quality and cost
        status, _ = await post(
            session, url + "/reward", {"event_id": event_id, "latency_ms": 100.0, "reward_token": token}, HEADERS
        )
        if status == 202:
            ledger.parts.append((event_id, None, 100.0))
    quality = round(rng.random(), 6)
    status, _ = await post(
        session,
        url + "/reward",
        {"event_id": event_id, "quality": quality, "cost_usd": 0.0005, "reward_token": token},
        HEADERS,
    )
    if status == 202:
        ledger.parts.append((event_id, quality, None))
        ledger.completed.add(event_id)


async def test_repeated_kill_9_under_concurrent_traffic(tmp_path: Path) -> None:
    rng = random.Random(9)
    server = ServerProcess(
        tmp_path, checkpoint_interval_s=0.25, env={"BANDITROUTE_API_KEYS": f"route,reward,admin:{KEY}"}
    )
    ledger = Ledger()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            for _ in range(KILLS):
                await server.start(session)
                # Feedback for decisions made before the last kill: their tokens must still hold.
                for event_id in [ledger.unanswered.pop() for _ in range(min(5, len(ledger.unanswered)))]:
                    await feedback(session, server.url, ledger, event_id, rng)
                workers = [
                    asyncio.ensure_future(worker(session, server.url, ledger, random.Random(rng.random())))
                    for _ in range(WORKERS)
                ]
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                server.kill()  # mid-request: some answers never arrive, so they are not acknowledged
                await asyncio.gather(*workers)
            await server.start(session)
            for _ in range(100):  # the restart re-learns joins whose learned rows died with the process
                async with session.get(server.url + "/stats", headers=HEADERS) as resp:
                    stats = await resp.json()
                if stats["write_queue"] == 0:
                    break
                await asyncio.sleep(0.05)
            _, probe = await post(session, server.url + "/route", PROBE, HEADERS)
            server.kill()
    finally:
        server.close()

    print(
        f"crash test: {KILLS} kills, {len(ledger.decisions)} decisions, {len(ledger.parts)} parts,"
        f" {len(ledger.completed)} completed acknowledged"
    )
    assert len(ledger.decisions) > 100 and len(ledger.completed) > 50, "too little traffic to prove anything"
    assert server.log_text().count('"event":"started"') == KILLS + 1
    db = sqlite3.connect(server.data_dir / "banditroute.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) - count(DISTINCT event_id) FROM decisions").fetchone()[0] == 0
    stored_decisions = {row[0] for row in db.execute("SELECT event_id FROM decisions")}
    assert set(ledger.decisions) <= stored_decisions, "an acknowledged decision is missing"
    stored_parts = db.execute("SELECT event_id, quality, latency_ms FROM feedback").fetchall()
    missing = [p for p in ledger.parts if p not in stored_parts]
    assert not missing, f"{len(missing)} acknowledged feedback parts are missing"
    assert db.execute("SELECT count(*) - count(DISTINCT event_id) FROM learned").fetchone()[0] == 0
    learned = {row[0] for row in db.execute("SELECT event_id FROM learned WHERE vw_cost IS NOT NULL")}
    assert ledger.completed <= learned, "an acknowledged, complete reward was not learned"
    assert stats["rewards_learned"] == len(learned)
    db.close()

    # The policy the server runs is exactly the log's learned rows, learned in order from scratch.
    # (The decomposed learner: the log's rows relearned as the live router learns them, then its Thompson pmf.)
    config = load_config(server.config)
    reference = Router(config)
    store = Store(server.data_dir / "banditroute.db")
    reference.relearn(store.learned_after(0))
    store.close()
    names = Catalog(config.models).names
    # The server's word tokens: keyed with its data directory's secret (the log holds only those).
    tokens = WordTokens(word_key(load_or_create_secret(secret_path(server.data_dir))))
    feats = featurize(PROBE["query"], PROBE["metadata"], config.features, tokens)
    r, p = config.reward, config.policy
    args = (feats, estimate_tokens(PROBE["query"]), r.weights, r.default_output_tokens, p.thompson_draws, None, 0.0)
    expected = dict(zip(names, decider.decide(reference.policy, names, *args).pmf))
    assert probe["pmf"] == pytest.approx(expected, abs=1e-6)
