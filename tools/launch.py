"""Waiting for a `banditroute serve` that was just started: the one home of "start it, poll /healthz".

The benchmark, the demo and the system tests start real server processes; each waits here until the
server answers `GET /healthz` with 200, and stops waiting at once if the process exits.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request


class ServerDidNotStart(RuntimeError):
    """The server exited, or did not answer /healthz with 200 in time."""


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes] | None = None, *, timeout_s: float = 30.0, poll_s: float = 0.05
) -> None:
    """Return once `url`/healthz answers 200; raise ServerDidNotStart when `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerDidNotStart(f"the server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ServerDidNotStart(f"the server at {url} did not become healthy within {timeout_s:g} s")
        time.sleep(poll_s)


async def wait_healthy_async(
    url: str, proc: subprocess.Popen[bytes] | None = None, *, timeout_s: float = 30.0, poll_s: float = 0.05
) -> None:
    """`wait_healthy` for a caller on an event loop (the polling runs in a thread)."""
    await asyncio.to_thread(wait_healthy, url, proc, timeout_s=timeout_s, poll_s=poll_s)
