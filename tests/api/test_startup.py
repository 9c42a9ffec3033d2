"""Start-up after a long stop (issue 15, defect 7): the service serves first, and the decisions whose
wait window passed meanwhile are finished afterwards, in slices with other work between them."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from banditroute.service import single
from banditroute.service.single import LearningService
from tests.conftest import make_config

SLICE = 40
N = 3 * SLICE + 7


async def test_overdue_decisions_are_finished_after_start_up_in_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(single, "_EXPIRE_SLICE", SLICE, raising=False)
    config = make_config(tmp_path, reward={"reward_wait_s": 60.0}, server={"decision_ack": "enqueue"})
    first = await LearningService.open(config)
    for i in range(N):
        await first.route(f"question {i}", {}, None)
    await first.stop()

    started, later = time.time(), time.time() + 3600.0  # an hour later: every window has passed
    service = await LearningService.open(config, clock=lambda: later + (time.time() - started))
    try:
        assert len(service.router.joiner) == N, "open() returned before learning the overdue ones"
        turns, seen_at = 0, []

        async def ticker() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        expire = service.router.expire

        def recorded(now: float, limit: int | None = None) -> list:
            seen_at.append(turns)
            return expire(now, limit)

        monkeypatch.setattr(service.router, "expire", recorded)
        tick = asyncio.get_running_loop().create_task(ticker())
        for _ in range(1000):
            await asyncio.sleep(0.01)
            if len(service.router.joiner) == 0:
                break
        tick.cancel()
        assert len(service.router.joiner) == 0, "the expire loop finished them"
        first_pass = seen_at[: N // SLICE + 1]
        assert len(first_pass) == N // SLICE + 1
        assert all(a < b for a, b in zip(first_pass, first_pass[1:])), "other work ran between slices"
        assert (await service.route("a new question", {}, None)).event_id
    finally:
        await service.stop()
    db = sqlite3.connect(Path(config.server.data_dir) / "banditroute.db")
    assert db.execute("SELECT count(*) FROM learned").fetchone()[0] == N
