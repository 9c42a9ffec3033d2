"""`serve --workers N` when its supervisor is killed with SIGKILL (issue 15, defect 6): the children die
with it, so nothing keeps answering on the port or learning from the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from banditroute.config import default_config_text
from tests.conftest import ROOT, free_port
from tools.launch import wait_healthy_async

pytestmark = pytest.mark.system


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_the_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(default_config_text())
    log = open(tmp_path / "cluster.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "banditroute.cli", "serve", "--workers", "2", "--config", str(config),
         "--port", str(port), "--data-dir", str(tmp_path / "var")],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    children: set[int] = set()
    try:
        await wait_healthy_async(url, proc, timeout_s=30.0)
        deadline = time.monotonic() + 10
        while len(children := {c for c in _children(proc.pid) if _alive(c)}) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the learner and two serving processes (a spawn helper may come and go)
        assert len(children) >= 3
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(c) for c in children), "a child outlived its supervisor"
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)):
                    pass
    finally:
        if proc.poll() is None:
            proc.kill()
        for child in children:
            if _alive(child):
                os.kill(child, signal.SIGKILL)
        log.close()
