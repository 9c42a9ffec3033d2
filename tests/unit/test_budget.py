"""Online budget and quality targets (issue 17): the controller as a specification on synthetic plants,
and the Router steering cost_weight with it (every learned row names the weight in force)."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from banditroute import budget
from banditroute.budget import COST, QUALITY, Controller, Target
from banditroute.config import Config, ConfigError, load_config
from banditroute.router import MemorySink, Router
from banditroute.types import FeedbackPart, ModelSpec

SCALE = 0.001  # cost_scale: the cost term counts USD per 1,000 requests


def spend_of(weight: float, price: float = 1.0) -> float:
    """A plant: USD per request falls with the weight, elasticity 1 (0.002 USD at weight 0.1, per price)."""
    return price * 0.0002 / weight


@pytest.mark.parametrize(
    ("kind", "value"),
    [(COST, 0.0), (COST, -1.0), (COST, math.inf), (QUALITY, 0.0), (QUALITY, 1.0), (QUALITY, 1.5), ("spend", 1.0)],
)
def test_a_target_out_of_range_is_refused(kind: str, value: float) -> None:
    with pytest.raises(ValueError):
        Target(kind, value)


def test_spend_converges_to_the_budget_and_the_weight_to_the_dual_price() -> None:
    c = Controller(Target(COST, 1.0), cost_weight=0.1, cost_scale=SCALE)  # spends $2 per 1k at the start
    for _ in range(3000):
        c.decided(spend_of(c.cost_weight))
    assert c.cost_weight == pytest.approx(0.2, rel=0.02)  # the weight at which the plant spends $1 per 1k
    assert c.measured_cost_per_1k() == pytest.approx(1.0, rel=0.02)


def test_a_price_shock_is_absorbed_within_a_few_windows() -> None:
    c = Controller(Target(COST, 1.0), cost_weight=0.2, cost_scale=SCALE)
    for _ in range(500):
        c.decided(spend_of(c.cost_weight))
    for _ in range(10 * budget.WINDOW):  # prices x10: the weight must rise 10x to spend the same
        c.decided(spend_of(c.cost_weight, price=10.0))
    assert c.cost_weight == pytest.approx(2.0, rel=0.05)


def test_the_time_average_of_a_noisy_spend_meets_the_budget() -> None:
    rng = random.Random(7)
    c = Controller(Target(COST, 1.0), cost_weight=0.1, cost_scale=SCALE)
    spent = []
    for _ in range(20_000):
        # Each request goes to a cheap or a dear model; the weight sets the dear one's share.
        share = min(1.0, 0.02 / c.cost_weight)
        cost = 0.005 if rng.random() < share else 0.0001
        spent.append(cost)
        c.decided(share * 0.005 + (1 - share) * 0.0001)  # the decision's expected cost
    assert sum(spent[4000:]) / len(spent[4000:]) * 1000 == pytest.approx(1.0, rel=0.03)


def test_an_unreachable_budget_pins_the_weight_at_its_bound_without_winding_up() -> None:
    c = Controller(Target(COST, 1.0), cost_weight=0.1, cost_scale=SCALE)
    for _ in range(50_000):
        c.decided(0.01)  # $10 per 1k whatever the weight: the budget cannot be met
    assert c.cost_weight == pytest.approx(budget.W_MAX)
    for _ in range(30 * budget.WINDOW):  # now it can: the weight comes back from the bound in bounded time
        c.decided(spend_of(c.cost_weight))
    assert c.cost_weight == pytest.approx(0.2, rel=0.05)


def test_bills_above_the_estimates_raise_the_measured_spend() -> None:
    c = Controller(Target(COST, 1.0), cost_weight=0.1, cost_scale=SCALE)
    for _ in range(budget.CALIBRATION):
        c.learned(None, cost_usd=0.002, estimated_cost_usd=0.001)  # the bills are twice the estimates
    assert c.calibration == pytest.approx(2.0)
    for _ in range(3000):
        c.decided(spend_of(c.cost_weight) / 2)  # what the learner estimates: half the truth
    assert spend_of(c.cost_weight) * 1000 == pytest.approx(1.0, rel=0.03)  # the true spend meets the budget


def test_a_quality_target_holds_without_moving_on_decisions_and_waits_for_feedback() -> None:
    c = Controller(Target(QUALITY, 0.8), cost_weight=0.1, cost_scale=SCALE)
    for _ in range(1000):
        c.decided(0.002)  # spend is measured, not acted on
    assert c.cost_weight == pytest.approx(0.1)
    assert c.measured_cost_per_1k() == pytest.approx(2.0)
    assert c.measured_quality() is None  # no feedback yet: nothing measured, the weight holds


def test_quality_above_its_target_raises_the_weight_until_it_is_met() -> None:
    """A plant whose quality falls by 0.05 per doubling of the weight (0.85 at weight 0.1)."""
    rng = random.Random(3)
    c = Controller(Target(QUALITY, 0.8), cost_weight=0.1, cost_scale=SCALE)
    qualities, log_weights = [], []
    for _ in range(30_000):
        mean = 0.85 - 0.05 * math.log2(c.cost_weight / 0.1)
        q = 1.0 if rng.random() < mean else 0.0
        qualities.append(q)
        log_weights.append(math.log(c.cost_weight))
        c.learned(q, None, None)
    # The weight dithers with the 0/1 qualities' noise; its geometric mean is the one meeting the target.
    assert math.exp(sum(log_weights[6000:]) / len(log_weights[6000:])) == pytest.approx(0.2, rel=0.1)
    assert sum(qualities[6000:]) / len(qualities[6000:]) == pytest.approx(0.8, abs=0.01)


# -- the Router -----------------------------------------------------------------------------------

SPECS = (ModelSpec("cheap", 0.1, 0.4, 100_000), ModelSpec("dear", 30.0, 60.0, 100_000))
SPEC = {s.name: s for s in SPECS}
TRUTH = {"cheap": 0.5, "dear": 0.9}
QUERIES = ["write a haiku about owls", "explain glaciers to a child", "list three facts about jazz", "fix my code"]


def config(**reward: object) -> Config:
    return dataclasses.replace(load_config(), models=SPECS).with_overrides(reward=reward)


def drive(router: Router, steps: int, seed: int = 0) -> list[float]:
    """Route and reward `steps` requests; the cost of each served one, USD."""
    rng = random.Random(seed)
    spent = []
    for i in range(steps):
        d = router.route(rng.choice(QUERIES), now=float(i), event_id=f"e{i}")
        cost = SPEC[d.model].cost_usd(d.input_tokens, 256)
        spent.append(cost)
        q = 1.0 if rng.random() < TRUTH[d.model] else 0.0
        router.feedback(FeedbackPart(d.event_id, float(i), quality=q, cost_usd=cost, latency_ms=400.0), float(i))
    return spent


def test_the_router_holds_a_budget_and_logs_each_row_under_the_weight_it_was_learned_at() -> None:
    sink = MemorySink()
    router = Router(config(target_cost_per_1k=8.0), sink=sink)
    spent = drive(router, 3000)
    late = spent[600:]
    assert sum(late) / len(late) * 1000 == pytest.approx(8.0, rel=0.05)
    weights = {row.cost_weight for row in sink.learned_rows}
    assert len(weights) > 100  # the weight moved online, and every learned row says which one was in force
    state = router.stats()["target"]
    assert state["kind"] == COST and state["target"] == 8.0
    assert state["cost_weight"] == router.config.reward.cost_weight


def test_an_operator_weight_restarts_the_controller_from_it_and_clearing_the_target_keeps_the_weight() -> None:
    router = Router(config(target_cost_per_1k=8.0))
    drive(router, 200)
    router.set_weights(0.5, 0.0)
    assert router.target is not None and router.target.cost_weight == pytest.approx(0.5)
    drive(router, 50)
    held = router.config.reward.cost_weight
    router.set_target(None)
    assert router.target is None and router.stats()["target"] is None
    assert router.config.reward.target_cost_per_1k is None
    assert router.config.reward.cost_weight == held
    router.set_target(Target(QUALITY, 0.7))
    assert router.config.reward.target_quality == 0.7 and router.config.reward.target_cost_per_1k is None


@pytest.mark.parametrize(
    ("reward", "policy", "message"),
    [
        ({"target_cost_per_1k": 1.0, "target_quality": 0.8}, {}, "set at most one"),
        ({"target_cost_per_1k": 0.0}, {}, "target_cost_per_1k must be > 0"),
        ({"target_quality": 1.0}, {}, r"target_quality must be in \(0, 1\)"),
        ({"target_quality": 0.8}, {"exploration": "squarecb"}, 'need policy.exploration = "thompson"'),
    ],
)
def test_bad_targets_are_config_errors(reward: dict[str, object], policy: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config().with_overrides(reward=reward, policy=policy)


def test_a_logged_target_is_replayed_at_start_and_one_the_configuration_cannot_hold_is_skipped() -> None:
    from banditroute.service.recovery import WEIGHTS, apply_change
    from banditroute.types import ConfigChange

    change = ConfigChange(0.0, WEIGHTS, {"cost_weight": 0.2, "latency_weight": 0.0, "target_cost_per_1k": 3.0})
    router = Router(config())
    apply_change(router, change)
    assert router.target is not None and router.target.target == Target(COST, 3.0)
    assert router.config.reward.cost_weight == 0.2  # the controller goes on from the logged weight
    vw = Router(dataclasses.replace(load_config(), models=SPECS).with_overrides(policy={"exploration": "squarecb"}))
    apply_change(vw, change)  # a start must not fail on it: the weights apply, the target is skipped
    assert vw.target is None and vw.config.reward.cost_weight == 0.2
    old = ConfigChange(0.0, WEIGHTS, {"cost_weight": 0.3, "latency_weight": 0.0})  # logged before targets
    apply_change(router, old)
    assert router.target is not None and router.config.reward.cost_weight == 0.3
