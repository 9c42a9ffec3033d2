from __future__ import annotations

import numpy as np
import pytest

from simulators import worlds
from simulators.datasets import load_dataset
from tests.support import FIXTURES

DATA = FIXTURES / "data"


@pytest.fixture(scope="module")
def world() -> worlds.DatasetWorld:
    return worlds.DatasetWorld(load_dataset(DATA / "routerbench"), seed=1)


def test_dataset_world_is_a_seeded_permutation_of_complete_prompts(world: worlds.DatasetWorld) -> None:
    ds = world.dataset
    complete = int((~np.isnan(ds.quality).any(axis=1)).sum())
    assert len(world) == complete < len(ds)  # the fixture holds prompts with a missing result
    assert sorted(world.order.tolist()) == np.flatnonzero(~np.isnan(ds.quality).any(axis=1)).tolist()
    again = worlds.DatasetWorld(ds, seed=1)
    other = worlds.DatasetWorld(ds, seed=2)
    assert again.order.tolist() == world.order.tolist() != other.order.tolist()
    step = 3
    i = world.order[step]
    r = world.outcome(step, ds.models[0])
    assert (r.quality, r.cost_usd) == (ds.quality[i, 0], ds.cost_usd[i, 0])
    assert world.request(step).query == ds.prompts[i] and world.request(step).metadata == {}
    assert worlds.DatasetWorld(ds, with_task=True).request(0).metadata["task"]


def test_latency_is_modelled_from_price_class(world: worlds.DatasetWorld) -> None:
    cheap = min(world.models(0), key=lambda m: m.output_price)
    dear = max(world.models(0), key=lambda m: m.output_price)
    assert cheap.latency_ttft_ms < dear.latency_ttft_ms and cheap.tokens_per_s > dear.tokens_per_s
    lat = [world.outcome(s, cheap.name).latency_ms for s in range(len(world))]
    assert min(lat) > 0 and np.std(lat) > 0


def test_perturbations(world: worlds.DatasetWorld) -> None:
    m = world.models(0)[0].name
    drift = worlds.Drift(world, m, start=10, delta=-2.0)
    assert drift.outcome(9, m) == world.outcome(9, m) and drift.outcome(10, m).quality == 0.0
    outage = worlds.Outage(world, m, 5, 7)
    assert outage.outcome(5, m).error == "server_error" and outage.outcome(7, m).error is None
    price = worlds.PriceChange(world, m, at=4, factor=10.0)
    assert price.outcome(4, m).cost_usd == pytest.approx(10 * world.outcome(4, m).cost_usd)
    assert price.models(4)[0].input_price == pytest.approx(10 * world.models(0)[0].input_price)
    assert price.models(3) == world.models(3)
    new = worlds.NewModel(world, m, at=20)
    assert m not in {s.name for s in new.models(19)} and m in {s.name for s in new.models(20)}
    shifted = worlds.task_mix_shift(world)
    tasks = [shifted.request(s).task for s in range(len(shifted))]
    first_half = set(tasks[: len(tasks) // 3])
    assert sorted(shifted.order.tolist()) == list(range(len(world)))
    assert not first_half & set(tasks[-len(tasks) // 4 :]), "the task mix shifts"


class TwoTasks(worlds.World):
    """A user's own world in a few lines: model `a` is right for even steps, `b` for odd ones."""

    def __init__(self, n: int = 200):
        from banditroute.types import ModelSpec

        self.n = n
        self.specs = (ModelSpec("a", 1.0, 1.0, 10_000), ModelSpec("b", 1.0, 1.0, 10_000))

    def __len__(self) -> int:
        return self.n

    def models(self, step: int):
        return self.specs

    def request(self, step: int) -> worlds.Request:
        return worlds.Request(step, "even request" if step % 2 == 0 else "odd question", None)

    def outcome(self, step: int, model: str) -> worlds.Result:
        good = (model == "a") == (step % 2 == 0)
        return worlds.Result(1.0 if good else 0.0, 0.0001, 10, 10, 100.0)


def test_a_custom_world_runs_through_the_router() -> None:
    from banditroute.config import load_config
    from simulators.simulate import new_router, simulate, summarize

    world = TwoTasks(600)
    records = list(simulate(new_router(world, load_config()), world))
    late = summarize(records[-200:], load_config().reward.weights)
    assert late["mean_quality"] > 0.85
