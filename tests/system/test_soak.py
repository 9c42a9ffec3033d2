"""Soak: 100,000 routes with no feedback through the Router; everything in memory stays bounded.

At `server.max_pending` the oldest decision is finished early with the default reward (and
learned), so pending joins never exceed the bound; the joiner's deadline queue stays proportional
to it even when feedback releases decisions long before their deadline.
"""

from __future__ import annotations

from banditroute.config import load_config
from banditroute.router import Router
from banditroute.types import FeedbackPart

ROUTES = 100_000
MAX_PENDING = 1_000


class CountingSink:
    """A LogSink that keeps counts only, so the test itself holds no per-event memory."""

    def __init__(self) -> None:
        self.decisions_seen = 0
        self.learned_seen = 0
        self.defaulted = 0

    def decision(self, _decision: object) -> None:
        self.decisions_seen += 1

    def learned(self, row) -> None:
        self.learned_seen += 1
        self.defaulted += "quality" in row.defaulted


def test_100k_routes_without_feedback_stay_bounded() -> None:
    # default_quality set (unset by default since issue 14): joins finished early learn it, as counted below.
    config = load_config().with_overrides(server={"max_pending": MAX_PENDING}, reward={"default_quality": 0.5})
    sink = CountingSink()
    router = Router(config, sink=sink)
    high_water = 0
    for i in range(ROUTES):
        router.route(f"soak question {i % 101} on topic {i % 17}", {"tenant": f"t{i % 7}"}, now=i * 0.001)
        if i % 1000 == 0:
            high_water = max(high_water, len(router.joiner), router.joiner.deadline_entries())
    print(
        f"soak: {ROUTES} routes, max_pending {MAX_PENDING}, pending high-water {high_water},"
        f" finished early with the default reward {sink.defaulted}"
    )
    assert len(router.joiner) == MAX_PENDING and high_water <= MAX_PENDING + 1
    assert sink.decisions_seen == ROUTES
    assert sink.learned_seen == sink.defaulted == ROUTES - MAX_PENDING  # finished early, with the default reward
    assert router.stats()["rewards_learned"] == ROUTES - MAX_PENDING
    assert router.policy.is_finite()
    # Feedback that completes joins long before their deadline (600 s) leaves stale deadline
    # entries behind; they are compacted away, so the queue stays near the pending count.
    for i in range(5_000):
        d = router.route(f"answered {i % 13}", None, now=100.0 + i * 0.001)
        router.feedback(FeedbackPart(d.event_id, 100.0, quality=1.0, cost_usd=0.0001), 100.0 + i * 0.001)
        assert router.joiner.deadline_entries() <= 2 * MAX_PENDING + 1024 + 1
