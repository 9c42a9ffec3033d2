"""The dashboard's ring of per-interval aggregates and the shadow-mode estimates: pure, so tested directly."""

from __future__ import annotations

import pytest

from banditroute.telemetry.shadow import ShadowTracker
from banditroute.telemetry.timeseries import TimeSeries
from banditroute.types import Decision, LearnedRow


def decision(event_id: str, ts: float, model: int, explored: bool = False) -> Decision:
    models = ("a", "b")
    return Decision(event_id, ts, "|w x", models, model, (0.8, 0.2) if model == 0 else (0.2, 0.8), explored, "why")


def row(event_id: str, ts: float, reward: float | None, quality: float | None, cost: float) -> LearnedRow:
    return LearnedRow(1, event_id, ts, reward, quality, cost, 100.0, 0.1, "", 0.1, 0.0)


def test_buckets_aggregate_by_interval_and_the_ring_is_bounded() -> None:
    ts = TimeSeries(interval_s=10.0, history=3, recent_max=2)
    ts.decided(decision("e1", 100.0, 0), {})
    ts.decided(decision("e2", 105.0, 1, explored=True), {"c": "capabilities"})
    ts.learned(decision("e1", 100.0, 0), row("e1", 109.0, 0.5, 0.7, 0.002))
    ts.learned(decision("e2", 105.0, 1), row("e2", 112.0, None, None, 0.0))  # skipped: not in the means
    out = ts.to_json()
    first = out["series"][0]
    assert (first["t"], first["decisions"], first["share"], first["exploration_rate"]) == (
        100.0,
        2,
        {"a": 0.5, "b": 0.5},
        0.5,
    )
    assert (first["learned"], first["mean_reward"], first["mean_quality"]) == (1, 0.5, 0.7)
    assert first["cost_per_1k"] == pytest.approx(2.0)
    assert [r["event_id"] for r in out["recent"]] == ["e2", "e1"] and out["recent"][0]["excluded"] == 1
    for t in (120.0, 130.0, 140.0, 150.0):
        ts.decided(decision(f"t{t}", t, 0), {})
    assert [b["t"] for b in ts.to_json()["series"]] == [130.0, 140.0, 150.0]  # the newest `history` buckets
    assert len(ts.to_json()["recent"]) == 2
    ts.decided(decision("late", 90.0, 0), {})  # a clock that stepped back counts in the newest bucket
    assert ts.to_json()["series"][-1]["decisions"] == 2


def test_shadow_summary_weighs_outcomes_by_the_bandits_probability_of_the_baseline() -> None:
    tracker = ShadowTracker()
    for matched in (True, False, True, True):
        tracker.decided(matched)
    summary = tracker.to_json("a")
    assert (summary["match_rate"], summary["bandit_ips"], summary["baseline_value"]) == (0.75, None, None)
    for reward, weight in ((1.0, 0.9), (0.0, 0.1), (0.5, 0.5), (1.0, 0.0)):
        tracker.learned(reward, weight)
    summary = tracker.to_json("a")
    assert summary["baseline_value"] == pytest.approx(2.5 / 4)
    assert summary["bandit_ips"]["value"] == pytest.approx((0.9 + 0 + 0.25 + 0) / 4)
    assert summary["bandit_snips"]["value"] == pytest.approx(1.15 / 1.5)
    ips = summary["bandit_ips"]
    assert ips["n"] == 4 and ips["ci_low"] < ips["value"] < ips["ci_high"]
    never = ShadowTracker()
    never.learned(1.0, 0.0)  # the bandit never picks the baseline: SNIPS is undefined
    assert never.to_json("a")["bandit_snips"] is None and never.to_json("a")["bandit_ips"]["value"] == 0.0
