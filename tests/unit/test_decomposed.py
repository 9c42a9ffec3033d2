"""The decomposed learner (issue 14): quality learned, cost and latency known, Thompson exploration under
a conservative budget, snapshots and relearning that reproduce it exactly."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from banditroute import exploration, features
from banditroute.config import Config, load_config
from banditroute.policy import Policy, PolicyError
from banditroute.router import MemorySink, Router, sample, uniform_from
from banditroute.types import EvalExample, FeedbackPart, ModelSpec, Outcome

SPECS = (
    ModelSpec("cheap", 0.1, 0.4, 100_000),
    ModelSpec("fair", 0.2, 0.8, 100_000),
    ModelSpec("dear", 60.0, 120.0, 100_000),
)
SPEC = {s.name: s for s in SPECS}
TRUTH = {"cheap": 0.4, "fair": 0.7, "dear": 0.9}
QUERIES = ["write a haiku about owls", "explain glaciers to a child", "list three facts about jazz", "fix my code"]


def config(weight: float = 0.1, **policy: object) -> Config:
    base = dataclasses.replace(load_config(), models=SPECS)
    return base.with_overrides(reward={"cost_weight": weight}, policy=policy)


def run(router: Router, steps: int, rng: random.Random, start: float = 0.0) -> list[str]:
    chosen = []
    for i in range(steps):
        now = start + i
        d = router.route(rng.choice(QUERIES), now=now, event_id=f"e{start}-{i}")
        chosen.append(d.model)
        q = 1.0 if rng.random() < TRUTH[d.model] else 0.0
        cost = SPEC[d.model].cost_usd(d.input_tokens, 256)
        router.feedback(FeedbackPart(d.event_id, now, quality=q, cost_usd=cost, latency_ms=500.0), now)
    return chosen


def test_a_priced_out_model_gets_p_0_and_a_model_without_evidence_is_explored_while_it_can_win() -> None:
    cheap_only = Router(config(weight=1.0)).route("hello there", now=0.0, event_id="a")
    assert dict(zip(cheap_only.models, cheap_only.pmf))["dear"] == 0.0  # 1 - its cost < 0 - another's
    anyone = Router(config(weight=0.01)).route("hello there", now=0.0, event_id="b")
    assert all(p > 0.05 for p in anyone.pmf)  # no evidence yet: every model is wide, and may win
    assert sum(anyone.pmf) == pytest.approx(1.0)


def test_exploration_shrinks_with_evidence_and_the_best_model_wins() -> None:
    router = Router(config(weight=0.0), sink=MemorySink())
    chosen = run(router, 600, random.Random(1))
    assert chosen[-200:].count("dear") >= 170
    d = router.sink.decisions[-1]
    assert d.models[sample(list(d.pmf), uniform_from(d.event_id))] == d.model  # reproducible from its id


def test_the_pmf_depends_on_the_state_and_request_only() -> None:
    router = Router(config())
    run(router, 50, random.Random(2))
    a = router.route("explain glaciers to a child", now=100.0)
    b = router.route("explain glaciers to a child", now=100.0)
    assert a.pmf == b.pmf  # the draws are a fixed table, not the event id's


def test_a_weight_change_acts_on_the_next_request_without_relearning() -> None:
    router = Router(config(weight=0.0))
    run(router, 300, random.Random(3))
    before = router.route("explain glaciers to a child", now=400.0)
    router.set_weights(1.0, 0.0)
    after = router.route("explain glaciers to a child", now=401.0)
    assert dict(zip(before.models, before.pmf))["dear"] > 0.5
    assert dict(zip(after.models, after.pmf))["dear"] == 0.0


def test_no_invented_quality_but_cost_and_latency_are_learned() -> None:
    router = Router(config())
    assert router.config.reward.default_quality is None
    d = router.route("hello", now=0.0, event_id="x")
    router.feedback(FeedbackPart(d.event_id, 0.0, cost_usd=0.5, latency_ms=900.0), 0.0)
    [row] = router.expire(1e9)
    stats = router.policy.state.of(d.model)
    assert row.vw_cost is None and stats.n == 0  # no quality learned
    assert stats.cost_n == 1 and stats.latency_n == 1 and stats.latency_sum == 900.0


def test_the_estimated_cost_follows_what_the_calls_cost() -> None:
    router = Router(config())
    stats, spec = router.policy.state.of("fair"), router.policy.specs["fair"]
    prior = stats.cost(spec, 100, 256)
    for _ in range(99):
        stats.observe_cost(spec, 100, 10 * prior)
    assert stats.cost(spec, 100, 256) == pytest.approx(10 * prior, rel=0.1)


def test_the_snapshot_restores_the_learner_exactly() -> None:
    for residual in ("ridge", "vw"):
        router = Router(config(residual=residual))
        run(router, 200, random.Random(4))
        data = router.policy.serialize()
        restored = Policy(router.config.policy, SPECS, model_data=data)
        if residual == "ridge":  # (VW itself writes a reloaded workspace's bytes a little differently)
            assert restored.serialize() == data
        for q in QUERIES:
            text = features.featurize(q, {}, router.config.features)
            mean, width = router.policy.quality(text, ("cheap", "fair", "dear"))
            mean2, width2 = restored.quality(text, ("cheap", "fair", "dear"))
            assert mean2.tolist() == mean.tolist() and width2.tolist() == width.tolist()
    with pytest.raises(PolicyError):
        Policy(config(residual="vw").policy, SPECS, model_data=data[:40])
    with pytest.raises(PolicyError):  # a ridge snapshot is not a VW-residual one
        Policy(config(residual="vw").policy, SPECS, model_data=Router(config()).policy.serialize())


def test_relearning_the_log_reproduces_the_live_policy() -> None:
    sink = MemorySink()
    live = Router(config(baseline_model="fair"), sink=sink)
    run(live, 300, random.Random(5))
    decisions = {d.event_id: d for d in sink.decisions}
    replayed = Router(config(baseline_model="fair"))
    replayed.relearn((row, decisions[row.event_id]) for row in sink.learned_rows)
    assert replayed.policy.serialize() == live.policy.serialize()
    probe = "list three facts about jazz"
    assert replayed.route(probe, now=1e3).pmf == live.route(probe, now=1e3).pmf


def test_the_budget_keeps_the_router_near_the_baseline() -> None:
    pmf = np.array([0.5, 0.3, 0.2])
    rewards = np.array([0.8, 0.5, 0.2])  # model 0 is the baseline
    same, changed = exploration.conservative(pmf, rewards, 0, served=10.0, base=10.0, budget=0.5)
    assert not changed and same.tolist() == pmf.tolist()  # 10 + 0.2 >= 10.8 - 5.4: all may be served
    kept, changed = exploration.conservative(pmf, rewards, 0, served=10.0, base=10.0, budget=0.05)
    assert changed and kept.tolist() == pytest.approx([0.625, 0.375, 0.0])  # R + r >= 0.95 (B + r_b): r >= 0.26
    greedy, _ = exploration.conservative(pmf, rewards, 0, served=0.0, base=10.0, budget=0.0)
    assert greedy.tolist() == [1.0, 0.0, 0.0]  # the promise is broken already: the greedy model, p = 1


def test_warmstart_learns_every_outcome_and_sets_the_baseline() -> None:
    router = Router(config(weight=0.1, exploration_budget=0.0), sink=MemorySink())
    rng = random.Random(6)
    examples = [
        EvalExample(
            rng.choice(QUERIES),
            {},
            {m: Outcome(quality=float(rng.random() < q), output_tokens=256) for m, q in TRUTH.items()},
        )
        for _ in range(100)
    ]
    warm = router.warmstart(examples)
    assert warm.examples == 100 and warm.updates == 300 and warm.baseline == router.baseline_model == "fair"
    assert router.policy.state.of("dear").n == 100
    # With no budget to spend, the router serves what its estimates say is at least as good as the baseline.
    d = router.route("write a haiku about owls", now=0.0)
    assert d.pmf[d.models.index("fair")] == 1.0 or "budget" not in d.reason
