"""A full disk: 503 with a clear error, no crash, recovery when space returns, nothing acknowledged lost.

The full disk is a file-size limit (RLIMIT_FSIZE) on the server process: writes past it fail with
EFBIG exactly as on a full file system, with no mount and no root needed. Python ignores SIGXFSZ,
so the write fails instead of killing the process. Space "returns" when the test lifts the limit.
"""

from __future__ import annotations

import io
import resource
import signal
import sqlite3
from pathlib import Path

import aiohttp
import structlog

from banditroute.telemetry import logs
from tests.conftest import ServerProcess, post

FILE_SIZE_LIMIT = 256 * 1024


def limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, hard))


async def test_full_disk_gives_503_then_recovers(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, checkpoint_interval_s=0.5, preexec_fn=limit_file_size)
    acked_decisions: list[str] = []
    acked_parts: list[tuple[str, float]] = []
    statuses: list[int] = []
    try:
        async with aiohttp.ClientSession() as session:
            await server.start(session)

            async def one(i: int) -> tuple[int, dict]:
                status, d = await post(session, server.url + "/route", {"query": f"fill the disk {i}"})
                statuses.append(status)
                if status != 200:
                    return status, d
                acked_decisions.append(d["event_id"])
                q = (i % 10) / 10
                status, r = await post(
                    session, server.url + "/reward", {"event_id": d["event_id"], "quality": q, "cost_usd": 0.001}
                )
                statuses.append(status)
                if status == 202:
                    acked_parts.append((d["event_id"], q))
                return status, r

            # Full for good: under `durability = "process"` the WAL syncer's checkpoint lets the WAL
            # start over while the database file still has room (the limit is per file), so a first
            # 503 can be followed by successes until the database file is full too.
            i, full, refused_in_a_row = 0, None, 0
            while refused_in_a_row < 3 and i < 5000:
                status, body = await one(i)
                i += 1
                refused_in_a_row = refused_in_a_row + 1 if status == 503 else 0
                if status == 503 and full is None:
                    full = body
            print(f"disk full after {i} route+reward pairs")
            assert full is not None, "the file-size limit was never reached"
            assert full["error"]["code"] == "store_unavailable" and "retry" in full["error"]["message"]
            # A small batch may still fit in the last free bytes, so health is polled while the
            # disk stays full rather than read once.
            degraded = 0
            for j in range(50):
                async with session.get(server.url + "/healthz") as resp:
                    if (resp.status, (await resp.json())["status"]) == (503, "degraded"):
                        degraded += 1
                        if degraded == 3:
                            break
                await one(i + j)
            i += j + 1
            assert degraded == 3, "/healthz did not report the full disk"
            assert 503 in statuses[-10:] and server.proc.poll() is None  # still full: 503s, no crash

            assert server.proc is not None
            resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            recovered = False
            for j in range(200):
                status, _ = await one(i + 5 + j)
                if status in (200, 202) and statuses[-1] == 202:
                    recovered = True
                    break
            assert recovered, "the service did not recover when space returned"
            async with session.get(server.url + "/healthz") as resp:
                assert resp.status == 200
            for j in range(20):
                await one(10_000 + j)
            server.kill()
    finally:
        server.close()

    assert 500 not in statuses
    log = server.log_text()
    assert '"event":"store_write_failed"' in log and '"event":"store_recovered"' in log
    db = sqlite3.connect(server.data_dir / "banditroute.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {row[0] for row in db.execute("SELECT event_id FROM decisions")}
    assert set(acked_decisions) <= stored
    parts = set(db.execute("SELECT event_id, quality FROM feedback").fetchall())
    assert set(acked_parts) <= parts, "an acknowledged reward was dropped"


def test_a_log_line_that_cannot_be_written_is_dropped_not_raised() -> None:
    class FullDisk(io.RawIOBase):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            raise OSError(27, "File too large")

    try:
        out = logs.configure("info", FullDisk())
        structlog.get_logger("test").info("decision", event_id="e1")
        assert out.dropped == 1
    finally:
        structlog.reset_defaults()
