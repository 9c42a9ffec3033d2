from __future__ import annotations

import pytest

from banditroute.joiner import COMPLETE, NOT_PENDING, PENDING, Joiner, required_parts
from banditroute.types import Decision, FeedbackPart


def decision(eid: str, ts: float = 0.0) -> Decision:
    return Decision(eid, ts, "|w hi", ("a", "b"), 0, (0.5, 0.5), False, "test")


@pytest.mark.parametrize(
    ("cost_weight", "latency_weight", "expected"),
    [
        (0, 0, {"quality"}),
        (0.1, 0, {"quality", "cost"}),
        (0, 1, {"quality", "latency"}),
        (1, 1, {"quality", "cost", "latency"}),
    ],
)
def test_required_parts_follow_the_weights(cost_weight, latency_weight, expected) -> None:
    assert required_parts(cost_weight, latency_weight) == expected


def test_parts_join_until_complete() -> None:
    j = Joiner(required_parts(0.1, 0.0))
    j.add(decision("e1"), deadline=10)
    r = j.add_part(FeedbackPart("e1", 1, latency_ms=300, output_tokens=20))
    assert (r.status, r.quality_applied, len(j)) == (PENDING, None, 1)
    r = j.add_part(FeedbackPart("e1", 2, quality=0.7, source="judge"))
    assert r.status == COMPLETE and r.joined is not None
    d, outcome = r.joined
    assert (d.event_id, outcome.quality, outcome.latency_ms, outcome.output_tokens) == ("e1", 0.7, 300, 20)
    assert outcome.sources == ["user", "judge"] and outcome.quality_source == "judge"
    assert len(j) == 0 and j.add_part(FeedbackPart("e1", 3, quality=1.0)).status == NOT_PENDING


@pytest.mark.parametrize(("rule", "expected", "applied"), [("first", 0.2, False), ("last", 0.9, True)])
def test_duplicate_quality_rule(rule, expected, applied) -> None:
    j = Joiner(required_parts(0.1, 0.0), quality_rule=rule)
    j.add(decision("e"), deadline=10)
    assert j.add_part(FeedbackPart("e", 1, quality=0.2)).quality_applied is True
    r = j.add_part(FeedbackPart("e", 2, quality=0.9))
    assert r.quality_applied is applied
    r = j.add_part(FeedbackPart("e", 3, cost_usd=0.0))
    assert r.joined is not None and r.joined[1].quality == expected


@pytest.mark.parametrize("rule", ["first", "last"])
@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([("judge", 0.3), ("user", 0.9)], (0.9, "user", [True, True])),  # user replaces an earlier judge
        ([("user", 0.9), ("judge", 0.3)], (0.9, "user", [True, False])),  # a later judge never replaces a user
        ([("system", 0.1), ("judge", 0.6)], (0.6, "judge", [True, True])),
        ([("judge", 0.6), ("system", 0.1)], (0.6, "judge", [True, False])),
    ],
)
def test_quality_source_precedence_over_the_rule(rule, parts, expected) -> None:
    j = Joiner(frozenset({"quality", "latency"}), quality_rule=rule)
    j.add(decision("e"), deadline=10)
    applied = [
        j.add_part(FeedbackPart("e", i, quality=q, source=src)).quality_applied for i, (src, q) in enumerate(parts)
    ]
    r = j.add_part(FeedbackPart("e", 9, latency_ms=10.0, source="system"))
    assert r.joined is not None
    outcome = r.joined[1]
    assert (outcome.quality, outcome.quality_source, applied) == expected


def test_expiry_releases_in_deadline_order_and_skips_finished() -> None:
    j = Joiner(frozenset({"quality"}))
    for i in range(5):
        j.add(decision(f"e{i}", ts=i), deadline=i + 10)
    j.add_part(FeedbackPart("e1", 1, quality=1.0))  # finished early
    assert j.expire(9.9) == []
    released = j.expire(13)
    assert [d.event_id for d, _ in released] == ["e0", "e2", "e3"]
    assert released[0][1].quality is None
    assert j.next_deadline() == 14 and len(j) == 1


def test_failure_completes_at_once() -> None:
    j = Joiner(frozenset({"quality", "cost"}))
    j.add(decision("e"), deadline=10)
    r = j.add_part(FeedbackPart("e", 1, error="timeout", source="system"))
    assert r.status == COMPLETE and r.joined is not None and r.joined[1].error == "timeout"


def test_bounded_pending_releases_the_oldest() -> None:
    j = Joiner(frozenset({"quality"}), max_pending=3)
    released = []
    for i in range(5):
        released += j.add(decision(f"e{i}"), deadline=100 + i)
    assert [d.event_id for d, _ in released] == ["e0", "e1"] and len(j) == 3


def test_discard_forgets_without_release() -> None:
    j = Joiner(frozenset({"quality"}))
    j.add(decision("e"), deadline=1)
    j.discard("e")
    assert "e" not in j and j.expire(5) == []
