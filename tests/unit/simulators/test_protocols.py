from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from banditroute.cli import main
from banditroute.config import load_config
from simulators.baselines import best_model, fixed_baselines, full_outcomes
from simulators.commands import perturb
from simulators.protocols import CSV_COLUMNS, PROTOCOLS, measure, parse_protocols, weight_switch
from simulators.simulate import new_router, simulate, summarize
from simulators.sweep import dataset_world, eval_examples, run_pass
from simulators.worlds import DatasetWorld
from tests.support import FIXTURES

DATA = FIXTURES / "data"


@pytest.fixture(scope="module")
def world() -> DatasetWorld:
    return dataset_world(DATA / "llmrouter", seed=0)


def read(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_quality_csv_has_exactly_the_columns_and_a_row_per_set_protocol_weight_and_seed(tmp_path: Path) -> None:
    argv = ["quality", "--data", str(DATA), "--sets", "routerbench", "--weights", "0.1,1", "--seeds", "0,1"]
    assert main([*argv, "--protocol", "cold,warm", "--protocol", "drift", "--evals", "40", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "quality.csv") as f:
        assert next(csv.reader(f)) == list(CSV_COLUMNS)
    rows = read(tmp_path / "quality.csv")
    keys = [(r["set"], r["protocol"], r["cost_weight"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(PROTOCOLS) * 2 * 2  # protocols x weights x seeds
    assert {r["protocol"] for r in rows} == set(PROTOCOLS)
    for r in rows:
        family = r["protocol"].split(":")[0]
        assert (r["best_on_evals"] != "") == (family == "warm")
        assert (r["frozen"] != "") == (r["before_best_fixed"] != "") == (family == "drift")
        assert (r["skyline"] != "") == (family != "drift")
        assert all(r[c] != "" for c in ("router", "best_fixed", "oracle", "cost_greedy"))
        assert float(r["best_fixed"]) <= float(r["oracle"]) + 1e-9
    md = (tmp_path / "quality.md").read_text()
    assert "## Cold start" in md and "## Warm start" in md and "## After a change" in md
    assert "--protocol cold,warm,drift:drift" in md  # the command that made it
    assert (tmp_path / "routerbench.png").stat().st_size > 10_000


def test_seeds_give_one_row_per_seed_and_seed_keeps_working(tmp_path: Path) -> None:
    base = ["quality", "--data", str(DATA), "--sets", "logpai", "--weights", "1"]
    assert main([*base, "--seeds", "0,2", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--seed", "2", "--out", str(tmp_path / "b")]) == 0
    two, one = read(tmp_path / "a" / "quality.csv"), read(tmp_path / "b" / "quality.csv")
    assert [r["seed"] for r in two] == ["0", "2"] and [r["protocol"] for r in two] == ["cold", "cold"]
    assert one == two[1:]  # seed 2 alone is the same run as seed 2 among others


def test_cold_protocol_is_todays_single_pass(world: DatasetWorld) -> None:
    """The cold router number is one plain seeded pass through the world, as `quality` measured before."""
    config = load_config()
    m = measure(lambda seed: world, protocols=["cold"], weights=[0.3], seeds=[0], config=config, skyline=False)
    cfg = config.with_overrides(reward={"cost_weight": 0.3})
    plain = summarize(list(simulate(new_router(world, cfg), world, seed=0)), cfg.reward.weights)
    assert m.cells[0].router == plain["mean_reward"] and m.cells[0].counted == len(world)


def test_a_frozen_router_learns_nothing_after_the_change(world: DatasetWorld) -> None:
    config = load_config().with_overrides(reward={"cost_weight": 0.3})
    outcomes = full_outcomes(world)
    best = outcomes.models[best_model(outcomes, config.reward.weights)]
    drifted = perturb(world, "drift", best, best)
    change = drifted.change_step
    assert change == len(world) // 2
    learning = run_pass(drifted, config)
    frozen = run_pass(drifted, config, freeze_at=change)
    assert learning.router.stats()["rewards_learned"] == len(world)
    assert frozen.router.stats()["rewards_learned"] == change  # only what was decided before the change
    assert frozen.router.stats()["pending_joins"] == 0
    assert frozen.records[:change] == learning.records[:change]  # the same router up to the change
    assert len(frozen.records) == len(world)  # it still routes after it


def test_warm_protocol_gives_the_evals_to_warmstart_and_routes_the_rest(world: DatasetWorld) -> None:
    config = load_config().with_overrides(reward={"cost_weight": 0.1})
    examples = eval_examples(world, range(3))
    names = {m.name for m in world.models(0)}
    assert all(set(ex.outcomes) == names for ex in examples)
    truth = world.outcome(1, "gemma-2-9b-it")
    assert examples[1].query == world.request(1).query
    assert examples[1].outcomes["gemma-2-9b-it"].quality == truth.quality
    assert examples[1].outcomes["gemma-2-9b-it"].cost_usd == truth.cost_usd
    p = run_pass(world, config, evals=40)
    assert p.warm is not None and p.warm.examples == 40 and p.warm.baseline in names
    assert [r["step"] for r in p.records] == list(range(40, len(world)))
    m = measure(lambda seed: world, protocols=["warm"], weights=[0.1], seeds=[0], config=config, evals=40)
    cell = m.cells[0]
    weights = config.reward.weights
    on_evals = best_model(outcomes := full_outcomes(world), weights, 0, 40)
    assert cell.best_on_evals == pytest.approx(np.mean(outcomes.reward(weights)[40:, on_evals]))
    online = fixed_baselines(outcomes, weights, world, start=40)
    assert cell.best_fixed == next(r["mean_reward"] for r in online if r["policy"] == "best_fixed")
    assert cell.best_fixed >= cell.best_on_evals and cell.counted == len(world) - 40


def test_baselines_over_a_part_of_the_stream(world: DatasetWorld) -> None:
    weights = load_config().reward.weights
    outcomes = full_outcomes(world)
    reward = outcomes.reward(weights)
    rows = {r["policy"]: r for r in fixed_baselines(outcomes, weights, world, start=100)}
    assert rows["best_fixed"]["mean_reward"] == pytest.approx(reward[100:].mean(axis=0).max())
    assert rows["oracle"]["mean_reward"] == pytest.approx(reward[100:].max(axis=1).mean())
    assert best_model(outcomes, weights, 0, 100) == int(np.argmax(reward[:100].mean(axis=0)))


def test_weight_switch_check(world: DatasetWorld) -> None:
    config = load_config()
    same = weight_switch(world, config, 1.0, 1.0)
    assert same.switched == same.constant  # a switch to the weight in force changes nothing
    s = weight_switch(world, config, 0.1, 1.0, seed=1)
    assert (s.before, s.after, s.seed, s.dataset) == (0.1, 1.0, 1, world.name)
    assert np.isfinite(s.switched) and np.isfinite(s.constant)


def test_quality_reports_the_weight_switch(tmp_path: Path) -> None:
    argv = ["quality", "--data", str(DATA), "--sets", "logpai", "--weights", "1", "--switch-weight", "0.1:1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    md = (tmp_path / "quality.md").read_text()
    assert "## Weight switched at mid-stream" in md and "| logpai |" in md.split("mid-stream")[1]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["cold"], ["cold"]),
        (["warm,cold", "cold"], ["warm", "cold"]),
        (["drift"], ["drift:drift", "drift:price", "drift:new-model", "drift:outage"]),
        (["drift:price, warm"], ["drift:price", "warm"]),
    ],
)
def test_parse_protocols(values: list[str], expected: list[str]) -> None:
    assert parse_protocols(values) == expected


@pytest.mark.parametrize("bad", ["hot", "drift:task-shift", "drift:"])
def test_unknown_protocols_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        parse_protocols([bad])
    with pytest.raises(SystemExit):
        main(["quality", "--data", str(DATA), "--protocol", bad])


def test_sweep_takes_the_protocols(tmp_path: Path, capsys) -> None:
    argv = ["sweep", "--dataset", str(DATA / "logpai"), "--weights", "0.3", "--protocol", "warm", "--evals", "30"]
    assert main([*argv, "--seeds", "0,1", "--no-skyline", "--out", str(tmp_path)]) == 0
    rows = read(tmp_path / "quality.csv")
    assert [(r["protocol"], r["seed"]) for r in rows] == [("warm", "0"), ("warm", "1")]
    assert all(r["best_on_evals"] != "" and r["skyline"] == "" for r in rows)
    assert "## Warm start" in capsys.readouterr().out
    assert {r["policy"] for r in read(tmp_path / "frontier.csv")} >= {"router", "best_fixed", "oracle"}
