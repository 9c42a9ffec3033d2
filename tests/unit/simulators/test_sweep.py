from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from banditroute.cli import main
from simulators.sweep import CSV_COLUMNS, hull_quality_at, upper_hull
from tests.support import FIXTURES

DATA = FIXTURES / "data"


def test_upper_hull_is_concave_and_non_dominated() -> None:
    points = [(0.0, 0.2), (1.0, 0.6), (2.0, 0.65), (3.0, 0.9), (4.0, 0.5), (0.5, 0.1)]
    hull = upper_hull(points)
    assert hull == [(0.0, 0.2), (1.0, 0.6), (3.0, 0.9)]
    assert hull_quality_at(hull, 2.0) == pytest.approx(0.75)  # mixing 1.0 and 3.0 half and half
    assert hull_quality_at(hull, 10.0) == 0.9


def read(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_sweep_writes_the_documented_frontier(tmp_path: Path, capsys) -> None:
    args = ["sweep", "--dataset", str(DATA / "routerbench"), "--weights", "0,1", "--seed", "0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    rows = read(tmp_path / "a" / "frontier.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
    models = {r["policy"] for r in rows if r["policy"].startswith("model:")}
    assert len(models) == 11
    for weight in ("0", "1"):
        policies = {r["policy"] for r in rows if r["cost_weight"] == weight}
        assert {"router", "best_fixed", "random", "oracle", "skyline", "cost_greedy"} | models == policies
    oracle = {r["cost_weight"]: float(r["mean_reward"]) for r in rows if r["policy"] == "oracle"}
    for r in rows:
        assert float(r["mean_reward"]) <= oracle[r["cost_weight"]] + 1e-9
    assert (tmp_path / "a" / "frontier.png").stat().st_size > 10_000
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert read(tmp_path / "b" / "frontier.csv") == rows  # same seed, same result
    assert "router" in capsys.readouterr().out


def test_simulate_prints_metrics_for_each_world(capsys) -> None:
    import json

    for world in ("none", "drift", "outage", "price", "new-model", "task-shift"):
        assert (
            main(
                [
                    "simulate",
                    "--dataset",
                    str(DATA / "llmrouter"),
                    "--cost-weight",
                    "0.3",
                    "--world",
                    world,
                    "--format",
                    "json",
                ]
            )
            == 0
        )
        report = json.loads(capsys.readouterr().out)
        assert report["router"]["n"] > 100 and "oracle" in report["baselines"]
        assert report["regret"][-1]["regret_vs_oracle"] >= 0
        if world == "outage":  # the failing model's window bounds its errors (test_worlds checks it fails)
            window = re.search(r"outage\(.+@(\d+)-(\d+)\)", report["world"])
            assert window is not None
            assert 0 <= report["router"]["errors"] <= int(window[2]) - int(window[1])


def test_tune_picks_a_weight_for_a_budget(capsys) -> None:
    code = main(["tune", "--dataset", str(DATA / "routerbench"), "--budget", "1.0", "--weights", "0,0.3,3"])
    out = capsys.readouterr().out
    assert code == 0 and "meets cost per 1k requests <= $1.0" in out


def test_apgr_and_cpt_follow_routellm() -> None:
    import numpy as np

    from simulators.baselines import apgr, cpt

    share = np.array([0.25, 0.5, 0.75])
    # A router as good as random mixing recovers the gap linearly: APGR 0.5.
    assert apgr(share, 0.5 + 0.4 * share, weak_quality=0.5, strong_quality=0.9) == pytest.approx(0.5)
    # One that recovers 80 % of the gap with a quarter of strong calls does better.
    better = np.array([0.82, 0.88, 0.9])
    assert apgr(share, better, 0.5, 0.9) > 0.75
    assert cpt(share, better, 0.5, 0.9, 0.5) == 0.25 and cpt(share, better, 0.5, 0.9, 0.95) == 0.5
    with pytest.raises(ValueError):
        apgr(share, better, 0.9, 0.5)
