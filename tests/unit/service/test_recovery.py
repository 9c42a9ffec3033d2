"""service.recovery on a real SQLite log: what a restarted process rebuilds, and the changes it follows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from banditroute.config import Config
from banditroute.router import MemorySink, Router
from banditroute.service.recovery import (
    EXPLORATION,
    SHADOW,
    WEIGHTS,
    checkpoint_of,
    follow_changes,
    load_policy,
    recover,
)
from banditroute.store.datadir import db_path
from banditroute.store.sqlite import Store
from banditroute.types import ConfigChange, FeedbackPart
from tests.conftest import make_config
from tests.support.store_sink import StoreSink


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def store(config: Config):
    store = Store(db_path(config.server.data_dir))
    yield store
    store.close()


def reward(store: Store, router: Router, part: FeedbackPart) -> None:
    """A part stored durably, then folded in (the service's order)."""
    store.write(parts=[part])
    router.feedback(part, part.ts)


def test_recover_takes_the_checkpoint_relearns_what_came_after_and_waits_again_for_the_pending(
    config: Config, store: Store
) -> None:
    first = Router(config, sink=StoreSink(store))
    events = [first.route(f"question {i}", now=float(i)) for i in range(12)]
    for d in events[:4]:
        reward(store, first, FeedbackPart(d.event_id, 20.0, quality=1.0, cost_usd=0.0001))
    checkpoint = checkpoint_of(first, 21.0)
    assert checkpoint is not None and checkpoint.learned_seq == 4
    store.write(checkpoint=checkpoint)
    for d in events[4:8]:
        reward(store, first, FeedbackPart(d.event_id, 22.0, quality=0.0, cost_usd=0.0001))
    reward(store, first, FeedbackPart(events[8].event_id, 23.0, quality=0.5))  # its cost still missing

    sink = MemorySink()
    recovered = recover(store, config, sink=sink, word_key=b"")
    router = recovered.router
    assert (recovered.checkpoint_seq, recovered.relearned, recovered.pending) == (4, 4, 4)
    assert router.learned_seq == first.learned_seq == 8
    probe = events[0]
    assert router.policy.predict(probe.features, probe.models) == pytest.approx(
        first.policy.predict(probe.features, probe.models), abs=1e-6
    )
    assert router.pending(events[8].event_id) == (events[8].tenant, 1)  # the stored part is folded in again
    assert router.pending(events[11].event_id) == (events[11].tenant, 0)
    assert router.pending(events[0].event_id) is None
    assert sink.learned_rows == []  # nothing is learned twice
    assert (recovered.decision_seq, recovered.feedback_seq) == (12, 9)  # where a learner tails from


def test_a_join_whose_parts_were_all_stored_finishes_at_recovery_after_the_callers_restore(
    config: Config, store: Store
) -> None:
    d = Router(config, sink=StoreSink(store)).route("a question", now=1.0)
    # The process died after committing both parts and before the join's learned row.
    store.write(parts=[FeedbackPart(d.event_id, 2.0, quality=1.0), FeedbackPart(d.event_id, 2.0, cost_usd=0.0001)])

    sink = MemorySink()
    seen: list[int] = []
    recovered = recover(
        store, config, sink=sink, word_key=b"", before_pending=lambda router: seen.append(len(sink.learned_rows))
    )
    assert seen == [0]
    assert [row.event_id for row in sink.learned_rows] == [d.event_id]
    assert recovered.router.learned_seq == 1 and recovered.pending == 1


def test_operator_changes_survive_a_restart_and_follow_changes_applies_the_newer_ones(
    config: Config, store: Store
) -> None:
    store.write(
        changes=[
            ConfigChange(1.0, WEIGHTS, {"cost_weight": 0.7, "latency_weight": 0.0}),
            ConfigChange(2.0, EXPLORATION, {"paused": True}),
        ]
    )
    recovered = recover(store, config, sink=MemorySink(), word_key=b"")
    router = recovered.router
    assert router.config.reward.cost_weight == 0.7 and router.exploration_paused
    assert [c.kind for c in recovered.changes] == [WEIGHTS, EXPLORATION] and recovered.changes_seq == 2

    store.write(
        changes=[
            ConfigChange(3.0, SHADOW, {"baseline": "no-such-model"}),  # not in this catalog: ignored
            ConfigChange(4.0, EXPLORATION, {"paused": False}),
        ]
    )
    seq = follow_changes(router, store.config_changes_after(recovered.changes_seq), recovered.changes_seq)
    assert seq == 4 and not router.exploration_paused and router.shadow_baseline is None
    assert follow_changes(router, store.config_changes_after(seq), seq) == seq  # nothing new


def test_a_checkpoint_is_the_live_policy_and_a_non_finite_one_is_never_taken(config: Config, store: Store) -> None:
    router = Router(config, sink=MemorySink())
    d = router.route("a question", now=1.0)
    router.feedback(FeedbackPart(d.event_id, 2.0, quality=1.0, cost_usd=0.0001), 2.0)
    checkpoint = checkpoint_of(router, 3.0)
    assert checkpoint is not None
    assert (checkpoint.learned_seq, checkpoint.model, checkpoint.ts) == (1, router.policy.serialize(), 3.0)
    store.write(checkpoint=checkpoint)
    policy, seq = load_policy(store, config)
    assert seq == 1 and policy is not None
    assert policy.predict(d.features, d.models) == pytest.approx(router.policy.predict(d.features, d.models), abs=1e-6)

    router.policy._ws.weights()[:4] = np.inf
    assert checkpoint_of(router, 4.0) is None
