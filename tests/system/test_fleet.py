"""A fleet over PostgreSQL: three `banditroute serve --store postgresql://…` processes on loopback, each
with its own data directory, one real database (a throwaway cluster, the `postgres` fixture).

What must hold (issue 18): every host routes; a reward sent to another host than the decider's is
learned; kill -9 of a serving host and then of the learner, under load, loses nothing acknowledged;
another host is the learner within `cluster.failover_s`; every completed join is learned exactly
once and the surviving hosts serve the policy a fresh replay of the log gives. And with the database
stopped under load, hosts answer 503 with Retry-After, recover by themselves, lose nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from banditroute import decider
from banditroute.catalog import Catalog
from banditroute.config import Config, load_config
from banditroute.features import WordTokens, estimate_tokens, featurize, word_key
from banditroute.http.app import create_app
from banditroute.router import Router
from banditroute.service.learner import Learner
from banditroute.service.serving import ServingService
from banditroute.store.postgres import PostgresStore
from banditroute.types import FeedbackPart
from tests.conftest import Api, ServerProcess, make_config, post, stop_api
from tools.pgcluster import PostgresCluster

KEY = "fleet-test-key-8c41d2e07b"
HEADERS = {"Authorization": f"Bearer {KEY}"}
FAILOVER_S = 3.0
PROBE = {"query": "probe: is this policy the one in the log?", "metadata": {"task": "code"}}


class Host(ServerProcess):
    def __init__(self, root: Path, name: str, url: str, *, learner: bool = True):
        (root / name).mkdir(parents=True, exist_ok=True)
        super().__init__(
            root / name,
            env={"BANDITROUTE_API_KEYS": f"route,reward,admin:{KEY}"},
            args=("--store", url) + (() if learner else ("--no-learner",)),
        )
        self.name = name
        self.config.write_text(
            self.config.read_text()
            + f"\n[cluster]\nfailover_s = {FAILOVER_S}\npublish_interval_s = 0.2\nreload_interval_s = 0.2\n"
            f'host_name = "{name}"\n'
        )


class Ledger:
    """What the hosts acknowledged."""

    def __init__(self) -> None:
        self.decisions: set[str] = set()
        self.parts: set[tuple[str, float]] = set()  # (event_id, quality)
        self.completed: set[str] = set()
        self.statuses: dict[int, int] = {}
        self.retry_after_seen = 0


async def traffic(session: aiohttp.ClientSession, hosts: list[Host], ledger: Ledger, rng: random.Random) -> None:
    """Route on one host, reward on another, until cancelled; a host that went away is skipped."""
    while True:
        decider_host, rewarder = rng.sample(hosts, 2)
        try:
            async with session.post(
                decider_host.url + "/route",
                json={"query": f"task {rng.randrange(9)} {rng.random()}", "metadata": {"tenant": "a"}},
                headers=HEADERS,
            ) as resp:
                _note(ledger, resp)
                if resp.status != 200:
                    await asyncio.sleep(0.05)
                    continue
                d = await resp.json()
            ledger.decisions.add(d["event_id"])
            quality = round(rng.random(), 6)
            body = {
                "event_id": d["event_id"],
                "quality": quality,
                "cost_usd": 0.0005,
                "latency_ms": 200.0,
                "reward_token": d["reward_token"],
            }
            async with session.post(rewarder.url + "/reward", json=body, headers=HEADERS) as resp:
                _note(ledger, resp)
                if resp.status == 202:
                    ledger.parts.add((d["event_id"], quality))
                    ledger.completed.add(d["event_id"])
        except (TimeoutError, aiohttp.ClientError):
            await asyncio.sleep(0.05)  # a killed host, or its answer cut: not acknowledged


def _note(ledger: Ledger, resp: aiohttp.ClientResponse) -> None:
    ledger.statuses[resp.status] = ledger.statuses.get(resp.status, 0) + 1
    if resp.status == 503 and resp.headers.get("Retry-After", "").isdigit():
        ledger.retry_after_seen += 1


async def stats(session: aiohttp.ClientSession, host: Host) -> dict:
    async with session.get(host.url + "/stats", headers=HEADERS) as resp:
        assert resp.status == 200
        return await resp.json()


async def learners(session: aiohttp.ClientSession, hosts: list[Host]) -> list[Host]:
    return [h for h in hosts if (await stats(session, h))["learner"]]


async def wait_for_learner(session: aiohttp.ClientSession, hosts: list[Host], timeout_s: float) -> Host:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await learners(session, hosts)
        if found:
            assert len(found) == 1, f"two learners at once: {[h.name for h in found]}"
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no learner among {[h.name for h in hosts]} within {timeout_s} s")


async def run_traffic(session: aiohttp.ClientSession, hosts: list[Host], ledger: Ledger, seconds: float) -> None:
    tasks = [asyncio.ensure_future(traffic(session, hosts, ledger, random.Random(i))) for i in range(6)]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def settle(session: aiohttp.ClientSession, url: str, ledger: Ledger, hosts: list[Host]) -> PostgresStore:
    """Wait until every completed join is learned and every host serves the snapshot with all of them."""
    store = PostgresStore(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        learned = {d.event_id for r, d in store.learned_after(0) if r.vw_cost is not None}
        newest = store.max_learned_seq()
        seqs = [(await stats(session, h))["policy_learned_seq"] for h in hosts]
        if ledger.completed <= learned and all(s == newest for s in seqs):
            return store
        await asyncio.sleep(0.1)
    raise AssertionError("the fleet did not learn every completed join and serve it within 30 s")


def check_log(store: PostgresStore, ledger: Ledger) -> None:
    stored = {d.event_id for d, _, _ in store.joined_log()}
    assert ledger.decisions <= stored, f"{len(ledger.decisions - stored)} acknowledged decisions are missing"
    parts = {(p.event_id, p.quality) for p in store.feedback()}
    assert ledger.parts <= parts, f"{len(ledger.parts - parts)} acknowledged parts are missing"
    rows = [r.event_id for r, _ in store.learned_after(0)]
    assert len(rows) == len(set(rows)), "a join was learned twice"


def expected_pmf(config_path: Path, store: PostgresStore) -> dict[str, float]:
    """The probe's pmf under a policy learned from scratch over the log's learned rows, in order."""
    config = load_config(config_path)
    reference = Router(config)
    reference.relearn(store.learned_after(0))
    names = Catalog(config.models).names
    tokens = WordTokens(word_key(store.shared_secret(b"")))  # the fleet's secret, kept in the database
    feats = featurize(PROBE["query"], PROBE["metadata"], config.features, tokens)
    r, p = config.reward, config.policy
    args = (feats, estimate_tokens(PROBE["query"]), r.weights, r.default_output_tokens, p.thompson_draws, None, 0.0)
    return dict(zip(names, decider.decide(reference.policy, names, *args).pmf))


async def test_three_hosts_share_the_log_and_survive_kill_9_of_a_server_and_of_the_learner(
    tmp_path: Path, pg_url: str
) -> None:
    hosts = [Host(tmp_path, name, pg_url) for name in ("a", "b", "c")]
    ledger = Ledger()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            for h in hosts:
                await h.start(session)
            first = await wait_for_learner(session, hosts, FAILOVER_S * 2)
            assert [(await stats(session, h))["host"] for h in hosts] == ["a", "b", "c"]
            for h in hosts:  # /metrics says the same
                async with session.get(h.url + "/metrics", headers=HEADERS) as resp:
                    flag = "1.0" if h is first else "0.0"
                    assert f'banditroute_learner{{host="{h.name}"}} {flag}' in await resp.text()
            await run_traffic(session, hosts, ledger, 1.0)

            # kill -9 of a serving host under load; it comes back and serves again
            server = next(h for h in hosts if h is not first)
            load = asyncio.ensure_future(run_traffic(session, hosts, ledger, 1.0))
            await asyncio.sleep(0.5)
            server.kill()
            await load
            await server.start(session)

            # kill -9 of the learner under load: another host takes over within failover_s
            load = asyncio.ensure_future(run_traffic(session, hosts, ledger, 2.0 + FAILOVER_S))
            await asyncio.sleep(1.0)
            first.kill()
            killed_at = time.monotonic()
            survivors = [h for h in hosts if h is not first]
            second = await wait_for_learner(session, survivors, FAILOVER_S * 2)
            took = time.monotonic() - killed_at
            await load
            assert took <= FAILOVER_S, f"the new learner took {took:.2f} s, more than failover_s = {FAILOVER_S}"
            assert second is not first

            store = await settle(session, pg_url, ledger, survivors)
            probes = []
            for h in survivors:
                status, d = await post(session, h.url + "/route", PROBE, HEADERS)
                assert status == 200
                probes.append(d["pmf"])
    finally:
        for h in hosts:
            h.close()

    print(
        f"fleet test: {len(ledger.decisions)} decisions, {len(ledger.completed)} completed, statuses {ledger.statuses},"
        f" failover {took:.2f} s"
    )
    assert len(ledger.decisions) > 100 and len(ledger.completed) > 50, "too little traffic to prove anything"
    for h in hosts:
        assert h.name != first.name or '"event":"learner_elected"' in h.log_text()
    check_log(store, ledger)
    expected = expected_pmf(hosts[0].config, store)
    store.close()
    for pmf in probes:
        assert pmf == pytest.approx(expected, abs=1e-6)


async def test_the_database_stopped_under_load_means_503_with_retry_after_then_recovery(
    tmp_path: Path, postgres: PostgresCluster, pg_url: str
) -> None:
    hosts = [Host(tmp_path, name, pg_url) for name in ("a", "b")]
    ledger = Ledger()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            for h in hosts:
                await h.start(session)
            await wait_for_learner(session, hosts, FAILOVER_S * 2)
            workers = [asyncio.ensure_future(traffic(session, hosts, ledger, random.Random(i))) for i in range(6)]
            await asyncio.sleep(1.0)
            # In a thread: the traffic goes on while pg_ctl waits for the server to stop and start.
            await asyncio.to_thread(postgres.pg_ctl, "stop", "-m", "fast", "-w")
            await asyncio.sleep(1.5)
            await asyncio.to_thread(postgres.pg_ctl, "start", "-w")
            back = len(ledger.completed)
            deadline = time.monotonic() + 30
            while len(ledger.completed) < back + 20 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            assert all(h.proc is not None and h.proc.poll() is None for h in hosts), "a host died with the database"
            assert ledger.retry_after_seen > 0, (
                f"no 503 with Retry-After while the database was down: {ledger.statuses}"
            )
            assert set(ledger.statuses) <= {200, 202, 503}, ledger.statuses
            assert len(ledger.completed) >= back + 20, "the hosts did not recover by themselves within 30 s"
            await wait_for_learner(session, hosts, FAILOVER_S * 2)
            store = await settle(session, pg_url, ledger, hosts)
    finally:
        for h in hosts:
            h.close()
    check_log(store, ledger)
    store.close()


CODE = {"query": "Write a Python function that merges two sorted lists", "metadata": {"capabilities": ["code"]}}


def favouring(config: Config, model: str, n: int = 80) -> bytes:
    """A policy file trained elsewhere (in this process) that prefers `model` for CODE."""
    router = Router(config.with_overrides(store={"url": ""}))
    for i in range(n):
        d = router.route(CODE["query"], CODE["metadata"], now=float(i))
        router.feedback(FeedbackPart(d.event_id, float(i), quality=float(d.model == model), cost_usd=0.0001), float(i))
    return router.snapshot(float(n), source="offline").dumps()


async def test_a_policy_loaded_on_one_host_is_what_the_learner_goes_on_from(tmp_path: Path, pg_url: str) -> None:
    admin = {"key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}
    config = make_config(
        tmp_path, store={"url": pg_url}, admin=admin, cluster={"publish_interval_s": 0.01, "reload_interval_s": 3600.0}
    )
    host = TestServer(create_app(config, kind=ServingService), host="127.0.0.1")
    await host.start_server()
    api = Api(host, aiohttp.ClientSession())
    seat = PostgresStore(pg_url, reconnect=False)  # elected as a host's seat is: the database's lock
    assert seat.try_lead()
    learner = Learner(config, store=seat)
    try:
        status, _, _ = await api.raw("POST", "/admin/policy", data=favouring(config, "gpt-4.1"), headers=HEADERS)
        assert status == 200
        learner.step()  # adopts the loaded policy and publishes it
        for _ in range(5):  # a little more learning, on top of it: the learner publishes again
            _, d = await api.post("/route", CODE)
            await api.post("/reward", {"event_id": d["event_id"], "quality": 0.5, "cost_usd": 0.0001})
        assert learner.step() == 5
        await api.service.reload_snapshot()
        _, d = await api.post("/route", CODE)
        assert d["pmf"]["gpt-4.1"] > max(p for m, p in d["pmf"].items() if m != "gpt-4.1")
    finally:
        learner.store.close()
        await stop_api(api)
