"""Router.restore_pending past `server.max_pending` (issue 15, defect 1): nothing taken back is lost.

A decision pushed out by the bound is finished with defaults, exactly as Router.route finishes it,
and a part stored for a decision is folded in before the bound can push that decision out.
"""

from __future__ import annotations

from banditroute.config import load_config
from banditroute.router import MemorySink, Router
from banditroute.types import Decision, FeedbackPart

QUERY = "Write a Python function that merges two sorted lists"


def _router(max_pending: int) -> tuple[Router, MemorySink]:
    config = load_config(None).with_overrides(server={"max_pending": max_pending}, reward={"latency_weight": 0.0})
    sink = MemorySink()
    return Router(config, sink=sink), sink


def _decisions(n: int) -> list[Decision]:
    """n decisions as a serving process logs them: made, never joined there."""
    router, sink = _router(1_000_000)
    router.joins = False
    for i in range(n):
        router.route(QUERY, now=1000.0 + i)
    return sink.decisions


def _complete(decision: Decision) -> FeedbackPart:
    return FeedbackPart(decision.event_id, decision.ts + 0.5, quality=1.0, cost_usd=0.0001)


def test_decisions_beyond_max_pending_are_finished_with_defaults_not_dropped() -> None:
    decisions = _decisions(50)
    router, sink = _router(10)
    router.restore_pending(decisions, [])
    learned = {row.event_id: row for row in sink.learned_rows}
    assert len(learned) == 40 == len(sink.learned_rows), "the 40 oldest are finished at once, each once"
    assert set(learned) == {d.event_id for d in decisions[:40]}
    assert all("quality" in row.defaulted for row in learned.values())
    assert len(router.joiner) == 10
    assert all(router.is_pending(d.event_id) for d in decisions[40:])


def test_a_stored_part_is_folded_in_before_the_bound_pushes_its_decision_out() -> None:
    decisions = _decisions(50)
    router, sink = _router(10)
    router.restore_pending(decisions, [_complete(d) for d in decisions])
    assert len(sink.learned_rows) == 50 and len(router.joiner) == 0
    assert all(row.quality == 1.0 and "quality" not in row.defaulted for row in sink.learned_rows)


def test_a_part_for_a_decision_already_waiting_completes_it() -> None:
    decisions = _decisions(5)
    router, sink = _router(10)
    router.restore_pending(decisions, [])
    assert sink.learned_rows == []
    router.restore_pending([], [_complete(decisions[2])])
    assert [row.event_id for row in sink.learned_rows] == [decisions[2].event_id]


def test_a_relearned_policy_equals_the_one_that_finished_them() -> None:
    decisions = _decisions(30)
    live, sink = _router(7)
    live.restore_pending(decisions, [_complete(d) for d in decisions[::3]])
    live.expire(10_000.0)
    assert len(sink.learned_rows) == 30
    fresh, _ = _router(7)
    by_id = {d.event_id: d for d in decisions}
    fresh.relearn((row, by_id[row.event_id]) for row in sink.learned_rows)
    assert fresh.policy.serialize() == live.policy.serialize()
