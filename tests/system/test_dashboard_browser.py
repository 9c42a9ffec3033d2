"""The dashboard in a real headless browser (Debian's chromium) against a running service on loopback.

`make test` installs chromium first (`make browser`); the test is skipped, with the reason, only
when chromium is not on the machine because it could not be installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import Api, make_config, start_api, stop_api
from tools.demo import CHROMIUM_FLAGS

KEY = "browser-test-key"
CHROMIUM = shutil.which("chromium")
FLAGS = list(CHROMIUM_FLAGS)
BROWSER_TIMEOUT_S = 60
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed and `make browser` (apt-get install chromium) could not "
    "install it on this machine",
)


async def browse(url: str, tmp_path: Path, *extra: str) -> str:
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=8000",
        "--window-size=1280,1500",
        *extra,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=BROWSER_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def drive(api: Api) -> None:
    """Traffic over several dashboard intervals, with feedback, and one operator change."""
    for i in range(60):
        _, d = await api.post("/route", {"query": f"Question {i}: explain how tides work", "metadata": {"task": "qa"}})
        quality = 0.9 if d["model"] in ("gpt-4.1", "claude-sonnet-4") else 0.5
        await api.post(
            "/reward", {"event_id": d["event_id"], "quality": quality, "input_tokens": 300, "output_tokens": 300}
        )
        if i == 30:
            status, _, _ = await api.raw(
                "POST", "/admin/weights", json={"cost_weight": 0.3}, headers={"Authorization": f"Bearer {KEY}"}
            )
            assert status == 200
        await asyncio.sleep(0.01)


def chart(dom: str, chart_id: str) -> str:
    match = re.search(rf'<svg id="{chart_id}"[^>]*>(.*?)</svg>', dom, re.S)
    assert match, f"no svg #{chart_id} in the page"
    return match.group(1)


def panel(dom: str, div_id: str) -> str:
    match = re.search(rf'<div id="{div_id}">(.*?)</div>', dom, re.S)
    assert match, f"no #{div_id} in the page"
    return match.group(1)


async def test_the_dashboard_renders_live_charts_with_data(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        dashboard={"interval_s": 0.1, "poll_interval_s": 0.5},
        admin={"key_sha256": hashlib.sha256(KEY.encode()).hexdigest()},
    )
    api = await start_api(config)
    try:
        await drive(api)
        url = str(api.server.make_url("/dashboard"))
        dom = await browse(url, tmp_path, "--dump-dom")
        assert int(re.search(r'data-renders="(\d+)"', dom).group(1)) >= 2  # it polled and redrew
        share = chart(dom, "chart-share")
        areas = re.findall(r'<path class="series area" d="([^"]+)"[^>]*data-name="([^"]+)"', share)
        assert len(areas) >= 2 and all(d.count("L") >= 4 for d, _ in areas)
        _, stats = await api.get("/stats")
        assert {m for _, m in areas} == set(stats["selection_share"])
        for chart_id, names in (
            ("chart-reward", {"reward", "quality"}),
            ("chart-cost", {"cost_per_1k"}),
            ("chart-explore", {"exploration_rate"}),
        ):
            svg = chart(dom, chart_id)
            lines = dict(
                (n, d) for d, n in re.findall(r'<path class="series" d="([^"]+)"[^>]*data-name="([^"]+)"', svg)
            )
            assert set(lines) == names, chart_id
            assert all(d.count("L") >= 2 for d in lines.values()), chart_id
            assert svg.count('class="point"') >= 3 * len(names)
            assert 'class="change"' in svg  # the weight change is drawn on every chart
        recent = panel(dom, "recent")
        assert recent.count('<tr class="decision">') == 15
        assert (
            len(
                re.findall(
                    r'<td class="reason">(?:exploit|explore) via (?:squarecb|thompson)[^<(]*'
                    r" \(p=[01]\.\d+\) among \d+ allowed",
                    recent,
                )
            )
            == 15
        )
        assert re.search(r'<b id="t-decisions">60</b>', dom)
        assert re.search(r'<b id="s-cost">0.3</b>', dom)
        changes = panel(dom, "changes")
        assert changes.count('<tr class="change-row">') == 1 and "cost_weight=0.3" in changes

        shot = tmp_path / "dashboard.png"
        await browse(url, tmp_path, f"--screenshot={shot}")
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    finally:
        await stop_api(api)
