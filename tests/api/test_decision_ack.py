"""`server.decision_ack = "enqueue"`: /route answers before its decision's commit, and still loses
nothing it can keep: the decision is stored and learned like any other; one whose commit fails is
forgotten, so its feedback gets 404 instead of waiting for a join that cannot be replayed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from banditroute.store.sqlite import StoreError
from tests.conftest import make_config, start_api, stop_api


async def _until(predicate, timeout_s: float = 10.0) -> bool:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_enqueued_decisions_are_stored_and_learned(tmp_path: Path) -> None:
    api = await start_api(make_config(tmp_path, server={"decision_ack": "enqueue"}))
    try:
        ids = []
        for i in range(30):
            status, d = await api.post("/route", {"query": f"summarise report {i}"})
            assert status == 200
            ids.append(d["event_id"])
        for i, eid in enumerate(ids):
            status, a = await api.post(
                "/reward", {"event_id": eid, "quality": (i % 5) / 4, "cost_usd": 0.0002, "latency_ms": 900}
            )
            assert (status, a["status"]) == (202, "learned")
        _, stats = await api.get("/stats")
        assert stats["rewards_learned"] == 30 and stats["pending_joins"] == 0
    finally:
        await stop_api(api)
    db = sqlite3.connect(tmp_path / "var" / "banditroute.db")
    assert {r[0] for r in db.execute("SELECT event_id FROM decisions")} == set(ids)
    assert db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 30


async def test_a_decision_whose_commit_fails_is_forgotten(tmp_path: Path) -> None:
    api = await start_api(make_config(tmp_path, server={"decision_ack": "enqueue"}))
    store = api.service.store
    assert store is not None
    write = store.write
    failures = []

    def failing_write(*args, **kwargs):
        failures.append(1)
        raise StoreError("disk I/O error (injected)")

    try:
        store.write = failing_write  # type: ignore[method-assign]
        status, d = await api.post("/route", {"query": "a decision the disk refuses"})
        assert status == 200  # answered before the commit
        assert await _until(lambda: failures and not api.service.router.is_pending(d["event_id"]))
        status, body = await api.post("/reward", {"event_id": d["event_id"], "quality": 1.0})
        assert (status, body["error"]["code"]) == (404, "unknown_event")

        store.write = write  # type: ignore[method-assign]
        status, d2 = await api.post("/route", {"query": "after the disk came back"})
        assert status == 200
        status, a = await api.post(
            "/reward", {"event_id": d2["event_id"], "quality": 1.0, "cost_usd": 0.0001, "latency_ms": 500}
        )
        assert (status, a["status"]) == (202, "learned")
    finally:
        store.write = write  # type: ignore[method-assign]
        await stop_api(api)


async def test_only_batches_nobody_awaits_skip_the_fsync(tmp_path: Path) -> None:
    """With "enqueue", a batch of decisions (and learned rows) commits without an fsync; any batch with
    a feedback part is durable. With "commit", decisions are awaited, so their batches are durable."""
    for ack, decisions_durable in (("enqueue", False), ("commit", True)):
        api = await start_api(make_config(tmp_path / ack, server={"decision_ack": ack, "write_linger_ms": 0.0}))
        store = api.service.store
        assert store is not None
        write, seen = store.write, []

        def spying_write(*args, durable: bool = True, **kwargs):
            seen.append((len(args[0]), len(args[1]), durable))  # (decisions, parts, durable)
            return write(*args, durable=durable, **kwargs)

        store.write = spying_write  # type: ignore[method-assign]
        try:
            _, d = await api.post("/route", {"query": "which model?"})
            assert await _until(lambda: any(n_dec for n_dec, _, _ in seen))
            await api.post("/reward", {"event_id": d["event_id"], "latency_ms": 300.0})
        finally:
            store.write = write  # type: ignore[method-assign]
            await stop_api(api)
        assert all(durable == decisions_durable for n_dec, n_parts, durable in seen if n_dec and not n_parts)
        assert all(durable for _, n_parts, durable in seen if n_parts)
        assert any(n_parts for _, n_parts, _ in seen)
