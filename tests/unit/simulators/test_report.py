from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.cli import main
from simulators.report import REPORT_COLUMNS, markdown_table, quality_rows
from tests.support import FIXTURES

DATA = FIXTURES / "data"


def rows_at(weight: float, router: tuple[float, float, float]) -> list[dict]:
    """Two single models (cheap 0.5 at $0, dear 0.9 at $2/1k), best fixed, oracle and a router."""
    q, c, r = router
    return [
        {"cost_weight": weight, "policy": "model:cheap", "mean_quality": 0.5, "mean_cost_usd": 0.0, "mean_reward": 0.5},
        {
            "cost_weight": weight,
            "policy": "model:dear",
            "mean_quality": 0.9,
            "mean_cost_usd": 0.002,
            "mean_reward": 0.9 - 2 * weight,
        },
        {
            "cost_weight": weight,
            "policy": "best_fixed",
            "model": "dear",
            "mean_quality": 0.9,
            "mean_cost_usd": 0.002,
            "mean_reward": 0.9 - 2 * weight,
        },
        {"cost_weight": weight, "policy": "oracle", "mean_quality": 0.95, "mean_cost_usd": 0.001, "mean_reward": 0.93},
        {"cost_weight": weight, "policy": "router", "mean_quality": q, "mean_cost_usd": c, "mean_reward": r},
    ]


def test_hull_and_gap_are_judged_against_mixing_single_models() -> None:
    above = quality_rows(rows_at(0.1, (0.75, 0.001, 0.75 - 0.1)), "toy")[0]
    assert above["hull_quality"] == pytest.approx(0.7)  # half cheap, half dear
    assert above["on_hull"] and above["hull_margin"] == pytest.approx(0.05)
    assert not above["beats_best_fixed"]  # 0.65 < 0.7
    assert above["gap_recovered"] == pytest.approx((0.65 - 0.7) / (0.93 - 0.7))
    below = quality_rows(rows_at(0.1, (0.6, 0.001, 0.9)), "toy")[0]
    assert not below["on_hull"] and below["beats_best_fixed"]
    assert set(above) == set(REPORT_COLUMNS)


def test_quality_command_writes_the_table_for_every_set_and_weight(tmp_path: Path, capsys) -> None:
    out = tmp_path / "q"
    argv = ["quality", "--data", str(DATA), "--sets", "routerbench,logpai", "--weights", "0.1,1", "--out", str(out)]
    assert main(argv) == 0
    table = (out / "quality.md").read_text().splitlines()
    assert len(table) == 2 + 2 * 2  # header, rule, one line per (set, weight)
    cells = [line.strip("|").split("|") for line in table[2:]]
    assert all(len(c) == 12 for c in cells)
    assert [(c[0].strip(), c[1].strip()) for c in cells] == [
        ("routerbench", "0.1"),
        ("routerbench", "1"),
        ("logpai", "0.1"),
        ("logpai", "1"),
    ]
    for name in ("routerbench", "logpai"):
        assert (out / f"{name}.png").stat().st_size > 10_000 and (out / f"{name}.csv").exists()
    assert "pairs at or above best fixed and the hull" in capsys.readouterr().out


def test_markdown_table_marks_misses() -> None:
    rows = quality_rows(rows_at(0.1, (0.6, 0.001, 0.9)), "toy")
    line = markdown_table(rows).splitlines()[2]
    assert "| toy | 0.1 |" in line and "NO" in line
