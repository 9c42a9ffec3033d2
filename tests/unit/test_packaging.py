"""The base install carries only the server's runtime dependencies: the plots and progress bars of the
offline simulators are the `sim` extra, the server never imports them, and a simulator command that
needs them says how to install them instead of failing with a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

from banditroute.cli import main

ROOT = Path(__file__).resolve().parents[2]
SIM_ONLY = {"matplotlib", "tqdm"}

# Builds the app as `banditroute serve` does (the CLI's parser with every registered command, the config,
# the aiohttp app) and opens the service on a temporary log; prints the sim-only modules then loaded.
SERVER_PATH = """
import asyncio, sys, tempfile
from aiohttp import web
from banditroute.cli import build_parser
from banditroute.config import load_config
from banditroute.http.app import create_app

build_parser()
config = load_config().with_overrides(server={"data_dir": tempfile.mkdtemp()})

async def main():
    runner = web.AppRunner(create_app(config))
    await runner.setup()  # the lifecycle: the log opened, the policy restored, the upstream session started
    await runner.cleanup()

asyncio.run(main())
print(",".join(sorted(m for m in ("matplotlib", "tqdm") if m in sys.modules)) or "none")
"""


def name(requirement: str) -> str:
    """The distribution a requirement line names (`tqdm>=4.66; extra == "sim"` -> tqdm)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return match.group(0).lower()


def test_the_base_requirements_hold_no_plotting_or_progress_bars() -> None:
    lines = requires("banditroute") or []
    base = {name(r) for r in lines if "extra ==" not in r}
    assert "aiohttp" in base and "vowpal-wabbit-next" in base and not base & SIM_ONLY
    assert {name(r) for r in lines if 'extra == "sim"' in r} == SIM_ONLY


def test_starting_the_server_imports_neither() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVER_PATH], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "none", out.stderr[-2000:]


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        (["sweep", "--dataset", "data/routerbench"], "matplotlib, tqdm"),
        (["quality", "--data", "data"], "matplotlib, tqdm"),
        (["simulate", "--dataset", "data/routerbench"], "tqdm"),
    ],
)
def test_a_simulator_command_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], missing: str
) -> None:
    for name in SIM_ONLY:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: find_spec answers None
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == f"banditroute {argv[0]}: needs {missing}, which only the sim extra installs:" + (
        " pip install 'banditroute[sim]'"
    )
