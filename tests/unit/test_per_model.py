"""The dashboard's per-model table: pure sums and a join with the router's counters; restored from a real log."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.store.sqlite import Store
from banditroute.telemetry.per_model import ModelOutcomes, model_table
from banditroute.types import Decision, LearnedRow

MODELS = ("a", "b", "c")


def decision(event_id: str, chosen: int) -> Decision:
    return Decision(event_id, 1.0, "|w x", MODELS, chosen, (0.5, 0.3, 0.2), False, "why")


def row(seq: int, event_id: str, quality: float | None, cost: float | None, defaulted: str = "") -> LearnedRow:
    return LearnedRow(seq, event_id, 2.0, 0.5, quality, cost, 100.0, 0.5, defaulted, 0.1, 0.0)


# (event, chosen model index, quality, cost, defaulted)
JOINS = [
    ("e1", 0, 1.0, 0.002, ""),
    ("e2", 0, 0.5, 0.004, ""),
    ("e3", 0, 0.0, 0.003, "quality"),  # a default stood in for the quality: its cost counts, not its quality
    ("e4", 1, 0.8, 0.010, "latency"),
    ("e5", 1, None, 0.020, ""),  # nothing learned (no quality): its cost still counts
]


def fed() -> ModelOutcomes:
    outcomes = ModelOutcomes()
    for i, (event_id, chosen, quality, cost, defaulted) in enumerate(JOINS, 1):
        outcomes.learned(MODELS[chosen], row(i, event_id, quality, cost, defaulted))
    return outcomes


def test_the_table_has_a_row_per_catalog_model_with_share_quality_cost_rewards_and_state() -> None:
    table = model_table(
        MODELS,
        selections={"a": 6, "b": 3, "gone": 1},  # a model removed by a reload still counts in the total
        rewards={"a": 3, "b": 1, "c": 0},
        cooldowns={"b": 42.5},
        cold_start=["b", "c"],
        outcomes=fed(),
    )
    by_model = {r["model"]: r for r in table}
    assert [r["model"] for r in table] == list(MODELS)
    a, b, c = by_model["a"], by_model["b"], by_model["c"]
    assert (a["decisions"], a["share"], b["share"], c["share"]) == (6, 0.6, 0.3, 0.0)
    assert a["mean_quality"] == pytest.approx(0.75) and a["cost_per_1k"] == pytest.approx(3.0)
    assert b["mean_quality"] == pytest.approx(0.8) and b["cost_per_1k"] == pytest.approx(15.0)
    assert (c["mean_quality"], c["cost_per_1k"], c["decisions"]) == (None, None, 0)
    assert [r["rewards"] for r in table] == [3, 1, 0]
    # Cooldown outranks cold start: it is what excludes the model now.
    assert [(r["state"], r["cooldown_remaining_s"]) for r in table] == [
        ("active", None),
        ("cooldown", 42.5),
        ("cold_start", None),
    ]


def test_no_decisions_yet_gives_zero_shares_not_an_error() -> None:
    table = model_table(MODELS, {}, {}, {}, MODELS, ModelOutcomes())
    assert [(r["share"], r["mean_quality"], r["state"]) for r in table] == [(0.0, None, "cold_start")] * 3


def test_the_logs_sums_restore_what_the_live_sums_held(tmp_path: Path) -> None:
    store = Store(tmp_path / "banditroute.db")
    try:
        store.write(
            [decision(e, chosen) for e, chosen, *_ in JOINS],
            (),
            [row(i, e, q, cost, d) for i, (e, _, q, cost, d) in enumerate(JOINS, 1)],
        )
        restored = ModelOutcomes()
        restored.restore(store.outcomes_per_model())
        assert restored.by_model == fed().by_model
        first_two = ModelOutcomes()
        first_two.restore(store.outcomes_per_model(through_seq=2))  # a serving process follows the rest
        assert (first_two.by_model["a"].rated, first_two.by_model["a"].cost_sum) == (2, pytest.approx(0.006))
        assert "b" not in first_two.by_model
    finally:
        store.close()
