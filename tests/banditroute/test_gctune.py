"""gctune: `serve`'s garbage-collector setting. Run in a child interpreter: it changes process-wide state."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import gc
from banditroute import gctune
default = gc.get_threshold()[0]
gctune.settle(0)
unchanged = gc.get_threshold()[0] == default and gc.get_freeze_count() == 0
with gctune.settled(12345):
    inside = (gc.get_threshold()[0], gc.get_freeze_count() > 0)
after = (gc.get_threshold()[0] == default, gc.get_freeze_count())
gctune.settle(50000)
print(unchanged, inside, after, gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


def test_settle_freezes_start_up_and_spaces_young_collections() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split("\n")[0] == "True (12345, True) (True, 0) 50000 True"
