from __future__ import annotations

import pytest

from banditroute.config import load_config
from banditroute.router import MemorySink
from simulators.datasets import load_dataset
from simulators.simulate import FeedbackModel, new_router, simulate, summarize
from simulators.worlds import DatasetWorld
from tests.support import FIXTURES

DATA = FIXTURES / "data"


@pytest.fixture(scope="module")
def world() -> DatasetWorld:
    return DatasetWorld(load_dataset(DATA / "logpai"), seed=0)


def test_same_seed_same_run(world: DatasetWorld) -> None:
    config = load_config()
    a = list(simulate(new_router(world, config), world, seed=4))
    b = list(simulate(new_router(world, config), world, seed=4))
    assert a == b and len(a) == len(world)
    assert {r["model"] for r in a} <= set(world.dataset.models)


def test_feedback_realism_knobs(world: DatasetWorld) -> None:
    config = load_config()
    clean = new_router(world, config)
    list(simulate(clean, world))
    assert clean.stats()["defaults_applied"] == 0 and clean.stats()["rewards_learned"] == len(world)
    # Without default_quality (the default), a decision whose quality never arrives teaches no quality.
    unrated = new_router(world, config)
    list(simulate(unrated, world, FeedbackModel(missing_quality=0.5), seed=1))
    assert unrated.stats()["defaults_applied"] == 0
    assert 0.3 * len(world) < unrated.stats()["skipped"] < 0.7 * len(world)
    sparse = new_router(world, config.with_overrides(reward={"default_quality": 0.5}))
    list(
        simulate(
            sparse,
            world,
            FeedbackModel(missing_quality=0.5, quality_delay_s=30.0, judge_noise=0.2, thumbs_fraction=0.3),
            seed=1,
        )
    )
    stats = sparse.stats()
    assert stats["rewards_learned"] == len(world) and stats["pending_joins"] == 0
    assert 0.3 * len(world) < stats["defaults_applied"] < 0.7 * len(world)


def test_the_router_logs_what_ope_needs(world: DatasetWorld) -> None:
    sink = MemorySink()
    records = list(simulate(new_router(world, load_config(), sink=sink), world))
    assert len(sink.decisions) == len(records) == len(sink.learned_rows)
    d = sink.decisions[0]
    assert d.models and abs(sum(d.pmf) - 1) < 1e-4 and 0 < d.probability <= 1
    summary = summarize(records, load_config().reward.weights)
    assert summary["n"] == len(world) and 0 <= summary["mean_quality"] <= 1
    assert summary["latency_p95_ms"] >= summary["latency_p50_ms"] > 0
    assert sum(summary["selection_share"].values()) == pytest.approx(1.0)
