"""The command itself: `python -m banditroute` and `--version`."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version


def test_python_dash_m_banditroute_is_the_command_and_says_its_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "banditroute", "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == f"banditroute {version('banditroute')}"
