"""Large queries do not stall other clients (issue 15, defect 2).

Eight 4M-character queries of digits and spaces (the PII scan's worst case, 0.5 s each) at once
against a real server: meanwhile another client's /healthz keeps answering within 50 ms (95th
percentile; the worst is printed), and the big ones are all answered.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import threading
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.system

BIG = orjson.dumps({"query": ("0 12 " * 800_000)[:4_000_000]})
CONCURRENT = 8
HEALTHZ_WITHIN_S = 0.050
# One 4M-character scan on the event loop takes 0.5-2 s, and eight arriving together stall it for all
# of theirs (4-16 s): a probe then waits far longer than this.
STALL_S = 2.0


def _p95(latencies: list[float]) -> float:
    return sorted(latencies)[int(len(latencies) * 0.95)]


def _probe(port: int, stop: threading.Event, latencies: list[float]) -> None:
    """/healthz over its own connection, one after another, from a thread of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        started = time.perf_counter()
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        assert response.status == 200
        time.sleep(0.005)
    conn.close()


async def test_healthz_answers_within_50_ms_while_eight_4m_character_queries_are_routed(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    async with aiohttp.ClientSession() as session:
        await server.start(session)
        try:
            stop, latencies = threading.Event(), []
            prober = threading.Thread(target=_probe, args=(server.port, stop, latencies), daemon=True)

            async def big() -> tuple[int, float]:
                started = time.perf_counter()
                headers = {"Content-Type": "application/json"}
                async with session.post(server.url + "/route", data=io.BytesIO(BIG), headers=headers) as resp:
                    await resp.read()
                    return resp.status, time.perf_counter() - started

            prober.start()
            await asyncio.sleep(1.0)
            calm = len(latencies)
            results = await asyncio.gather(*(big() for _ in range(CONCURRENT)))
            stop.set()
            prober.join(timeout=10)
            during, idle = latencies[calm:], latencies[:calm]
            p95, idle_p95 = _p95(during), _p95(idle)
            print(
                f"\n{CONCURRENT} x 4M-char queries: answered in {max(s for _, s in results):.2f} s;"
                f" /healthz during them: {len(during)} probes, p50 {sorted(during)[len(during) // 2] * 1000:.1f} ms,"
                f" p95 {p95 * 1000:.1f} ms, max {max(during) * 1000:.1f} ms; idle server p95 {idle_p95 * 1000:.1f} ms"
            )
            assert [status for status, _ in results] == [200] * CONCURRENT
            assert len(during) >= 10, "the probe ran while the big queries were handled"
            # The machine may be shared (CI, other jobs): the OS deschedules this test or the server
            # whatever the server does. So the bound is on the 95th percentile, and on a machine so
            # loaded that even an idle server's p95 exceeds a sixth of it, three times that p95. The
            # worst is printed, and must stay below the seconds that query-long stalls cost.
            assert p95 < max(HEALTHZ_WITHIN_S, 3 * idle_p95)
            assert max(during) < STALL_S
        finally:
            server.kill()
