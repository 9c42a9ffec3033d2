from __future__ import annotations

import pytest

from banditroute import reward
from banditroute.config import RewardConfig
from banditroute.types import ModelSpec, Outcome, RewardWeights

SPEC = ModelSpec("m", input_price=1.0, output_price=4.0, context_window=1000, latency_ttft_ms=200, tokens_per_s=100)


@pytest.mark.parametrize(
    ("quality", "cost", "latency", "weights", "expected"),
    [
        (1.0, 0.0, 0.0, RewardConfig().weights, 1.0),
        (0.8, 0.002, 0.0, RewardConfig(cost_weight=0.1, cost_scale=0.001).weights, 0.8 - 0.2),
        (0.5, 0.0, 5000.0, RewardConfig(latency_weight=0.2, latency_scale=10_000).weights, 0.5 - 0.1),
        (0.9, 0.01, 2000.0, RewardWeights(1.0, 0.5, 0.01, 1000.0), 0.9 - 1.0 - 1.0),
    ],
)
def test_combine_is_quality_minus_weighted_cost_and_latency(quality, cost, latency, weights, expected) -> None:
    assert reward.combine(quality, cost, latency, weights) == pytest.approx(expected)


def test_resolve_fills_in_what_is_missing() -> None:
    cfg = RewardConfig(cost_weight=0.1, default_quality=0.4, default_output_tokens=100)
    r = reward.resolve(Outcome(), SPEC, input_tokens=500, config=cfg)
    assert r is not None
    assert r.quality == 0.4 and set(r.defaulted) == {"quality", "cost", "latency"}
    assert r.cost_usd == pytest.approx((500 * 1.0 + 100 * 4.0) / 1e6)
    assert r.latency_ms == pytest.approx(200 + 1000)
    r = reward.resolve(Outcome(quality=1.0, input_tokens=10, output_tokens=10, latency_ms=50), SPEC, 500, cfg)
    assert r is not None and r.defaulted == () and r.cost_usd == pytest.approx(50 / 1e6)


def test_resolve_skip_and_failure() -> None:
    skip = RewardConfig(default_quality=None)
    assert reward.resolve(Outcome(cost_usd=0.1), SPEC, 10, skip) is None
    failed = reward.resolve(Outcome(error="timeout"), SPEC, 10, skip)
    assert failed is not None and failed.quality == reward.FAILURE_QUALITY


def test_vw_cost_is_an_affine_map_into_unit_interval() -> None:
    span = reward.reward_span([SPEC], RewardConfig(cost_weight=1.0))
    assert span > 1.0
    assert reward.to_vw_cost(1.0, span) == 0.0
    assert reward.to_vw_cost(-1e9, span) == 1.0
    a, b, c = (reward.to_vw_cost(r, span) for r in (0.9, 0.5, 0.1))
    assert a < b < c and (b - a) == pytest.approx(c - b)  # order and spacing kept
    assert reward.reward_span([SPEC], RewardConfig(cost_weight=0.0, latency_weight=0.0)) == 1.0


def test_priced_out_models_cannot_win_at_any_quality() -> None:
    cheap = ModelSpec("cheap", 0.1, 0.4, 100_000)
    dear = ModelSpec("dear", 60.0, 120.0, 100_000)  # about $0.06 a request of 500 + 256 tokens
    low, high = RewardConfig(cost_weight=0.01), RewardConfig(cost_weight=1.0)
    assert reward.priced_out([cheap, dear], 500, low) == set()  # 0.6 quality points: can still win
    assert reward.priced_out([cheap, dear], 500, high) == {"dear"}  # 61 points: never
    assert reward.priced_out([dear], 500, high) == set()  # nothing cheaper to lose to


def test_cold_start_floor_skips_priced_out_models() -> None:
    import dataclasses

    from banditroute.config import load_config
    from banditroute.router import Router

    specs = (
        ModelSpec("cheap", 0.1, 0.4, 100_000),
        ModelSpec("fair", 0.2, 0.8, 100_000),
        ModelSpec("dear", 60.0, 120.0, 100_000),
    )
    base = dataclasses.replace(load_config(), models=specs)
    for weight, cold in ((0.01, "cheap,fair,dear"), (1.0, "cheap,fair")):
        # The floor is the VW reward learner's rule; the decomposed learner's is in test_decomposed.py.
        cfg = base.with_overrides(reward={"cost_weight": weight}, rules={"cold_start_share": 0.2})
        router = Router(cfg.with_overrides(policy={"exploration": "squarecb"}))
        decision = router.route("hello there", now=0.0)
        assert decision.reason.split("cold start for ")[1].split(" ")[0] == cold
