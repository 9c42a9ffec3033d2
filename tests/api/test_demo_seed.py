"""`make demo` reproduces: its driver, run twice with one seed against a real service, prints the same figures."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from banditroute.config import load_config
from tests.conftest import ROOT, start_api, stop_api
from tests.support import FIXTURES
from tools import demo

FIXTURE = FIXTURES / "data" / "routerbench"
REQUESTS = 300  # more than the fixture's 140 prompts: the order repeats them in seeded shuffles


async def demo_figures(tmp_path: Path, seed: int) -> dict[str, Any]:
    """The demo's own config, order, traffic and summary, against an in-process service on loopback."""
    args = demo.arguments(["--seed", str(seed), "--requests", str(REQUESTS), "--rate", "100000"])
    ds = demo.load(FIXTURE)
    tmp_path.mkdir()
    path = tmp_path / "demo.toml"
    path.write_text(demo.demo_config(ds, str(tmp_path / "var"), 0, args))
    demo.seed_secret(tmp_path / "var", seed)
    admin = {"key_sha256": hashlib.sha256(demo.ADMIN_KEY.encode()).hexdigest()}
    api = await start_api(load_config(path).with_overrides(admin=admin))
    try:
        base = str(api.server.make_url("")).rstrip("/")
        totals = await demo.drive(api.session, base, ds, demo.traffic(ds.n, args.requests, args.seed), args)
        _, stats = await api.get("/stats")
    finally:
        await stop_api(api)
    return demo.figures(totals, stats)


async def test_the_same_seed_gives_the_same_figures_and_another_seed_others(tmp_path: Path) -> None:
    first = await demo_figures(tmp_path / "a", seed=3)
    assert first["requests"] == REQUESTS and first["rewards_learned"] == REQUESTS
    assert len(first["selection_share"]) >= 3  # the router explored: its draws shaped the figures
    assert await demo_figures(tmp_path / "b", seed=3) == first
    assert await demo_figures(tmp_path / "c", seed=4) != first


def test_the_traffic_order_is_seeded_and_covers_every_prompt_before_repeating_one() -> None:
    order = demo.traffic(140, 300, seed=1)
    assert order == demo.traffic(140, 300, seed=1) != demo.traffic(140, 300, seed=2)
    assert sorted(order[:140]) == list(range(140)) and sorted(order[140:280]) == list(range(140))


def test_the_screenshot_goes_outside_the_tracked_tree_unless_a_path_is_given() -> None:
    default = demo.arguments([]).screenshot
    assert default == "out/dashboard.png" and "out/" in (ROOT / ".gitignore").read_text().split()
    assert demo.arguments(["--screenshot", "docs/dashboard.png"]).screenshot == "docs/dashboard.png"
