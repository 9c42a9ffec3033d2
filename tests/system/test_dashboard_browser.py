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
from tests.support.devtools import Browser
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


IDLE_S = 0.8  # an idle gap of 8 dashboard intervals: the lines must break there


async def drive(api: Api) -> None:
    """Traffic over several dashboard intervals, with feedback, one operator change and one idle gap."""
    for i in range(60):
        if i == 40:
            await asyncio.sleep(IDLE_S)
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


def axis_label(svg: str) -> str:
    match = re.search(r'<text class="axis-label y"[^>]*>([^<]+)</text>', svg)
    assert match, "no y axis label"
    return match.group(1).replace("&amp;", "&")


def panel(dom: str, div_id: str) -> str:
    match = re.search(rf'<div id="{div_id}">(.*?)</table></div>', dom, re.S)
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
        _, stats = await api.get("/stats")
        _, data = await api.get("/dashboard/data")
        share = chart(dom, "chart-share")
        areas = re.findall(r'<path class="series area" d="([^"]+)"[^>]*data-name="([^"]+)"', share)
        assert len(areas) >= 2 and all(d.count("L") >= 3 for d, _ in areas)
        assert {m for _, m in areas} == set(stats["selection_share"])
        assert axis_label(share) == "% of decisions"
        for chart_id, names, label, value in (
            ("chart-reward", {"reward", "quality"}, "mean per bucket (quality 0–1)", r"-?\d\.\d{3}"),
            ("chart-cost", {"cost_per_1k"}, "USD per 1,000 requests", r"\$\d+\.\d{3}"),
            ("chart-explore", {"exploration_rate"}, "% of decisions explored", r"\d+\.\d%"),
        ):
            svg = chart(dom, chart_id)
            lines = dict(
                (n, d) for d, n in re.findall(r'<path class="series" d="([^"]+)"[^>]*data-name="([^"]+)"', svg)
            )
            assert set(lines) == names, chart_id
            assert all(d.count("L") >= 2 for d in lines.values()), chart_id
            # The idle gap breaks every line: a new subpath (M) after it, no segment across it.
            assert all(d.count("M") >= 2 for d in lines.values()), (chart_id, lines)
            assert svg.count('class="point"') >= 3 * len(names)
            assert 'class="change"' in svg  # the weight change is drawn on every chart
            assert axis_label(svg) == label, chart_id
            assert len(re.findall(r'<text class="tick y"[^>]*>[^<]+</text>', svg)) >= 3, chart_id
            assert len(re.findall(r'<text class="tick x"[^>]*>\d\d:\d\d(?::\d\d(?:\.\d)?)?</text>', svg)) >= 2, chart_id
            # Hovering a point shows its time, series and value.
            titles = re.findall(rf"<title>(\d\d:\d\d:\d\d) (\w+) ({value})</title>", svg)
            assert len(titles) == svg.count('class="point"'), chart_id
        costs = {f"${b['cost_per_1k']:.3f}" for b in data["series"] if b["cost_per_1k"] is not None}
        assert {v for _, _, v in re.findall(r"<title>(\S+) (cost_per_1k) (\S+)</title>", dom)} <= costs
        models = panel(dom, "models")
        rows = dict(re.findall(r'<tr class="model-row" data-model="([^"]+)">(.*?)</tr>', models, re.S))
        assert list(rows) == [r["model"] for r in data["per_model"]] and len(rows) == len(stats["rewards_per_model"])
        for model, cells in rows.items():
            share_cell = re.search(r'<td class="num share">([^<]+)</td>', cells).group(1)
            assert share_cell == f"{100 * stats['selection_share'].get(model, 0.0):.1f}%", model
            rewards_cell = re.search(r'<td class="num rewards">(\d+)</td>', cells).group(1)
            assert int(rewards_cell) == stats["rewards_per_model"][model], model
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


async def test_hovering_a_chart_shows_the_nearest_buckets_time_and_values(tmp_path: Path) -> None:
    config = make_config(tmp_path, dashboard={"interval_s": 0.1, "poll_interval_s": 30.0})
    api = await start_api(config)
    try:
        for i in range(30):
            _, d = await api.post("/route", {"query": f"Question {i}: explain how tides work"})
            await api.post("/reward", {"event_id": d["event_id"], "quality": 0.8, "cost_usd": 0.001 * (1 + i % 3)})
            await asyncio.sleep(0.01)
        url = str(api.server.make_url("/dashboard"))
        async with Browser(CHROMIUM, [*FLAGS, "--window-size=1280,1500"], tmp_path / "profile", url) as page:
            await page.wait_until("document.body && document.body.dataset.renders === '1'")
            _, data = await api.get("/dashboard/data")  # the page's only poll is done: it shows this
            box = await page.evaluate(
                "(() => { const r = document.getElementById('chart-cost').getBoundingClientRect();"
                " return {left: r.left, right: r.right, top: r.top, height: r.height}; })()"
            )
            tip = "document.querySelector('#panel-cost .tip')"
            assert await page.evaluate(f"{tip}.hidden") is True
            costed = [b for b in data["series"] if b["cost_per_1k"] is not None]
            assert len(costed) >= 3
            for bucket in (costed[-1], costed[0], costed[len(costed) // 2]):
                x = await page.evaluate(f"charts['chart-cost'].f.sx({bucket['t']!r})")
                await page.move_mouse(box["left"] + x + 1, box["top"] + box["height"] / 2)
                shown = await page.evaluate(
                    f"({{hidden: {tip}.hidden, text: {tip}.innerText,"
                    " crosshairs: document.querySelectorAll('#chart-cost .crosshair').length})"
                )
                assert shown["hidden"] is False and shown["crosshairs"] == 1, shown
                # Next to the crosshair, inside the chart's box.
                place = await page.evaluate(
                    f"(() => {{ const r = {tip}.getBoundingClientRect(); return {{left: r.left, right: r.right,"
                    " top: r.top}; })()"
                )
                near = abs(place["left"] - (box["left"] + x)) < 40 or abs(place["right"] - (box["left"] + x)) < 40
                assert near and box["top"] <= place["top"] <= box["top"] + box["height"], (place, x, box)
                when = await page.evaluate(f"fmtTime({bucket['t']!r})")
                assert shown["text"].split() == [when, "cost_per_1k", f"${bucket['cost_per_1k']:.3f}"], shown
            await page.move_mouse(box["left"] + box["right"], 5)  # off the chart: the readout goes
            assert await page.evaluate(f"{tip}.hidden") is True
            assert await page.evaluate("document.querySelectorAll('#chart-cost .crosshair').length") == 0
    finally:
        await stop_api(api)
