"""`make demo` end to end on the small fixture data: a real service process, traffic over HTTP, a screenshot."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import orjson

from banditroute.store.sqlite import Store
from tests.conftest import free_port
from tests.support import FIXTURES

FIXTURE = FIXTURES / "data" / "routerbench"


async def test_demo_fills_the_service_and_takes_a_screenshot(tmp_path: Path) -> None:
    shot = tmp_path / "dashboard.png"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.demo",
        "--data",
        str(FIXTURE),
        "--port",
        str(free_port()),
        "--requests",
        "30",
        "--rate",
        "200",
        "--interval",
        "0.05",
        "--work-dir",
        str(tmp_path / "demo"),
        "--screenshot",
        str(shot),
        "--exit",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    text = out.decode()
    summary = orjson.loads(text[text.index("{") : text.rindex("}") + 1])
    assert summary["requests"] == 30 and summary["rewards_learned"] == 30
    assert abs(sum(summary["selection_share"].values()) - 1.0) < 0.01
    store = Store(tmp_path / "demo" / "var" / "banditroute.db")
    try:  # halfway, the demo raised cost_weight through the admin API
        assert [(c.kind, c.payload["cost_weight"]) for c in store.config_changes()] == [("weights", 0.1)]
        assert store.counts()["decisions"] == 30
    finally:
        store.close()
    if shutil.which("chromium"):  # without it the demo says so and takes none; the browser test skips
        assert shot.read_bytes()[:4] == b"\x89PNG"
