from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.cli import main
from simulators.protocols import Cell
from simulators.report import REPORT_COLUMNS, meets_target, protocol_table, quality_rows
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
    table = (out / "quality.md").read_text().split("## Cold start")[1].strip().splitlines()
    cells = [line.strip("|").split("|") for line in table[2:6]]
    assert len(table[0].split("|")) == len(table[1].split("|")) == len(cells[0]) + 2
    assert [(c[0].strip(), c[1].strip()) for c in cells] == [
        ("routerbench", "0.1"),
        ("routerbench", "1"),
        ("logpai", "0.1"),
        ("logpai", "1"),
    ]
    assert table[6] == "" and "of 4 met" in table[7]
    for name in ("routerbench", "logpai"):
        assert (out / f"{name}.png").stat().st_size > 10_000 and (out / f"{name}.csv").exists()
    assert "wrote" in capsys.readouterr().out


def cell(protocol: str, router: float, seed: int = 0, counted: int = 1000, **baselines: float) -> Cell:
    values = {"best_on_evals": None, "frozen": None, "before_best_fixed": None, "best_fixed": 0.5, **baselines}
    return Cell(
        dataset="toy",
        protocol=protocol,
        cost_weight=0.1,
        seed=seed,
        router=router,
        oracle=0.9,
        skyline=None,
        cost_greedy=0.3,
        counted=counted,
        best_fixed_model="m",
        router_quality=router,
        router_cost_usd=0.0,
        explored_share=0.1,
        hull_margin=0.0,
        **values,
    )


@pytest.mark.parametrize(
    ("cells", "met"),
    [
        ([cell("cold", 0.485), cell("cold", 0.48, seed=1)], True),  # mean 0.4825 >= 0.5 - 0.02
        ([cell("cold", 0.47), cell("cold", 0.48, seed=1)], False),
        ([cell("cold", 0.46, counted=300)], True),  # a pilot: 0.05
        ([cell("warm", 0.51, best_on_evals=0.48), cell("warm", 0.5, seed=1, best_on_evals=0.49)], True),
        ([cell("warm", 0.52, best_on_evals=0.48), cell("warm", 0.5, seed=1, best_on_evals=0.515)], False),  # a seed
        ([cell("warm", 0.49, best_on_evals=0.48)], False),  # below best fixed
        ([cell("drift:price", 0.5, frozen=0.5, before_best_fixed=0.4)], True),
        ([cell("drift:price", 0.5, frozen=0.52, before_best_fixed=0.4)], False),
        ([cell("drift:outage", 0.5, frozen=0.4, before_best_fixed=0.51)], False),
    ],
)
def test_targets_follow_issue_14(cells: list[Cell], met: bool) -> None:
    assert meets_target(cells) is met


def test_protocol_tables_mark_misses_and_show_the_worst_seed() -> None:
    cells = [cell("warm", 0.52, best_on_evals=0.48), cell("warm", 0.5, seed=1, best_on_evals=0.515)]
    table = protocol_table(cells, "warm")
    line = table.splitlines()[2]
    assert line.startswith("| toy | 0.1 | 1000 | 0.510 |") and line.endswith("| NO |")
    assert "+0.010 (+0.000)" in line  # router - best fixed: mean, worst seed
    assert "0 of 1 met" in table
    assert protocol_table(cells, "drift") == ""
