"""What `/route`'s answer waits for: its decision's commit, always; how durable that commit is, is
`server.durability`. `decision_ack = "enqueue"` is retired: accepted with a warning, it waits too."""

from __future__ import annotations

from pathlib import Path

import structlog

from banditroute.store.sqlite import StoreError
from tests.conftest import make_config, start_api, stop_api


async def test_the_retired_enqueue_warns_and_answers_only_after_the_commit(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        api = await start_api(make_config(tmp_path, server={"decision_ack": "enqueue"}))
    store = api.service.store
    assert store is not None
    write = store.write

    def failing_write(*args, **kwargs):
        raise StoreError("disk I/O error (injected)")

    try:
        assert any(e["event"] == "decision_ack_deprecated" and 'durability = "process"' in e["message"] for e in logs)
        store.write = failing_write  # type: ignore[method-assign]
        status, body = await api.post("/route", {"query": "a decision the disk refuses"})
        assert (status, body["error"]["code"]) == (503, "store_unavailable")  # never answered before its commit
        store.write = write  # type: ignore[method-assign]
        status, d = await api.post("/route", {"query": "after the disk came back"})
        assert status == 200
        assert store.decision(d["event_id"]) is not None  # committed when answered
    finally:
        store.write = write  # type: ignore[method-assign]
        await stop_api(api)


async def test_only_power_durability_fsyncs_in_a_commit(tmp_path: Path) -> None:
    """Under "process" (the default) no commit fsyncs (the WAL syncer does, on its own thread); under
    "power" every batch someone waits on (a decision, a part) commits with an fsync."""
    for durability in ("process", "power"):
        api = await start_api(
            make_config(tmp_path / durability, server={"durability": durability, "write_linger_ms": 0.0})
        )
        store = api.service.store
        assert store is not None
        write, seen = store.write, []

        def spying_write(*args, durable: bool = True, **kwargs):
            seen.append((len(args[0]), len(args[1]), durable))  # (decisions, parts, durable)
            return write(*args, durable=durable, **kwargs)

        store.write = spying_write  # type: ignore[method-assign]
        try:
            _, d = await api.post("/route", {"query": "which model?"})
            status, _ = await api.post("/reward", {"event_id": d["event_id"], "latency_ms": 300.0})
            assert status == 202
            syncer = api.service.eventlog.syncer
            assert (syncer is not None) == (durability == "process")
        finally:
            store.write = write  # type: ignore[method-assign]
            await stop_api(api)
        awaited = [durable for n_dec, n_parts, durable in seen if n_dec or n_parts]
        assert len(awaited) >= 2 and all(awaited) == (durability == "power") and any(awaited) == (durability == "power")
        if syncer is not None:
            assert syncer.syncs >= 1 and syncer.failures == 0  # at the latest, the last sync at stop
