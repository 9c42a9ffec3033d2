"""`simulate --target-cost-per-1k / --target-quality` (issue 17): `router.last80` is the last 80 % of the
stream; `sweep` adds each target's point to the frontier; `tools.budget` finds where a world shifts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from banditroute.cli import main
from banditroute.config import load_config
from simulators.commands import perturb
from simulators.simulate import last80, summarize
from simulators.sweep import dataset_world
from tests.support import FIXTURES
from tools.budget import shift_step

DATA = FIXTURES / "data"


def simulate(capsys: pytest.CaptureFixture[str], *flags: str) -> dict:
    assert main(["simulate", "--dataset", str(DATA / "routerbench"), "--format", "json", *flags]) == 0
    return json.loads(capsys.readouterr().out)["router"]


def test_a_budget_run_reports_its_last_80_percent_and_the_controller(capsys: pytest.CaptureFixture[str]) -> None:
    fixed = simulate(capsys)
    assert fixed["target"] is None and set(fixed["last80"]) == {"cost_per_1k_usd", "mean_quality", "mean_reward"}
    budget = fixed["cost_per_1k_usd"] / 2
    held = simulate(capsys, "--target-cost-per-1k", str(budget))
    assert held["target"]["kind"] == "cost_per_1k" and held["target"]["target"] == pytest.approx(budget)
    assert held["target"]["cost_weight"] > 0.1  # spending less than the fixed weight's needs a higher weight
    assert held["last80"]["cost_per_1k_usd"] < fixed["last80"]["cost_per_1k_usd"]
    quality = simulate(capsys, "--target-quality", "0.5")
    assert quality["target"]["kind"] == "quality"


def test_both_targets_at_once_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="set at most one"):
        main(
            ["simulate", "--dataset", str(DATA / "routerbench"), "--target-cost-per-1k", "1", "--target-quality", "0.5"]
        )


def test_last80_is_the_summary_of_the_last_80_percent_of_the_steps() -> None:
    weights = load_config().reward.weights
    records = [
        {
            "model": "m",
            "quality": float(i < 20),
            "cost_usd": 0.001 * (i >= 20),
            "latency_ms": 1.0,
            "explored": False,
            "error": None,
        }
        for i in range(100)
    ]
    assert last80(records, weights) == {
        k: summarize(records[20:], weights)[k] for k in ("cost_per_1k_usd", "mean_quality", "mean_reward")
    }
    tail = last80(records, weights)
    assert tail["mean_quality"] == 0.0 and tail["cost_per_1k_usd"] == pytest.approx(1.0)


def test_sweep_puts_each_target_next_to_the_frontier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sweep", "--dataset", str(DATA / "routerbench"), "--weights", "0.1", "--no-skyline"]
    assert main([*args, "--target-cost-per-1k", "0.2,0.4", "--target-quality", "0.6", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "frontier.csv") as f:
        held = [r for r in csv.DictReader(f) if r["policy"].startswith("target_")]
    assert [r["policy"] for r in held] == ["target_cost_per_1k=0.2", "target_cost_per_1k=0.4", "target_quality=0.6"]
    assert float(held[0]["cost_per_1k_usd"]) < float(held[1]["cost_per_1k_usd"])
    assert "target_quality=0.6" in capsys.readouterr().out


def test_the_shift_step_of_a_price_change_and_of_a_task_mix_shift() -> None:
    base = dataset_world(DATA / "llmrouter", seed=0)
    assert shift_step(perturb(base, "price", "m", "m")) == len(base) // 2
    shifted = perturb(base, "task-shift", "m", "m")
    at = shift_step(shifted)
    early = {shifted.request(s).task for s in range(at)}
    late = {shifted.request(s).task for s in range(at, len(shifted))}
    assert 0 < at < len(shifted) and early and late and not early & late
