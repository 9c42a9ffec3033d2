"""What the tests share besides fixtures: fake upstreams, paths."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
