from __future__ import annotations

import sqlite3

import pytest

from banditroute.store.sqlite import Checkpoint, Store
from banditroute.types import Decision, FeedbackPart, LearnedRow


def decision(eid: str) -> Decision:
    return Decision(eid, 1.5, "|w hi |x chars2", ("a", "b"), 1, (0.25, 0.75), True, "why", 3, "t1")


def learned(seq: int, eid: str, vw_cost: float | None = 0.2) -> LearnedRow:
    return LearnedRow(seq, eid, 2.0, 0.8, 0.8, 0.0, 10.0, vw_cost, "", 0.1, 0.0)


def test_roundtrip_and_recovery_queries(tmp_path) -> None:
    store = Store(tmp_path / "log.db")
    store.write(
        [decision("e1"), decision("e2"), decision("e3")],
        [FeedbackPart("e1", 2.0, quality=0.8), FeedbackPart("e2", 2.0, latency_ms=5.0)],
        [learned(1, "e1")],
    )
    assert store.decision("e1") == decision("e1")
    assert store.decision("missing") is None
    assert [d.event_id for d in store.unlearned_decisions()] == ["e2", "e3"]
    assert [p.event_id for p in store.feedback_for_unlearned()] == ["e2"]
    assert [(r.seq, d.event_id) for r, d in store.learned_after(0)] == [(1, "e1")]
    assert list(store.learned_after(1)) == []
    assert store.counts() == {"decisions": 3, "feedback_parts": 2, "learned": 1, "joins_finished": 1}
    assert store.selection_counts() == {"b": 3}
    store.write([decision("e1")])  # a decision is never duplicated
    assert store.counts()["decisions"] == 3
    assert store.integrity_ok()
    store.close()


def test_checkpoints_are_checked_and_pruned(tmp_path) -> None:
    store = Store(tmp_path / "log.db")
    for i in range(5):
        store.write(checkpoint=Checkpoint(i, ["--cb_explore_adf"], f"model{i}".encode(), float(i)))
    ckpts = store.checkpoints()
    assert [(c.learned_seq, ok) for c, ok in ckpts] == [(4, True), (3, True), (2, True)]
    raw = sqlite3.connect(tmp_path / "log.db")
    raw.execute("UPDATE checkpoints SET model = ? WHERE learned_seq = 4", (b"corrupted",))
    raw.commit()
    assert [(c.learned_seq, ok) for c, ok in store.checkpoints()][0] == (4, False)


def test_write_is_atomic(tmp_path) -> None:
    store = Store(tmp_path / "log.db")
    with pytest.raises(Exception):
        store.write([decision("e1")], [FeedbackPart(None, 1.0, quality=1.0)])  # type: ignore[arg-type]
    assert store.counts()["decisions"] == 0


def test_unawaited_batches_commit_without_fsync_and_awaited_ones_with_it(tmp_path) -> None:
    store = Store(tmp_path / "log.db")
    sync = lambda: store.conn.execute("PRAGMA synchronous").fetchone()[0]  # noqa: E731  1 NORMAL, 2 FULL
    assert sync() == 2
    store.write([decision("e1")], durable=False)
    assert sync() == 1
    store.write([], [FeedbackPart("e1", 2.0, quality=0.5)])
    assert sync() == 2
    store.close()
    reopened = Store(tmp_path / "log.db")  # both batches committed either way
    assert reopened.decision("e1") == decision("e1") and reopened.feedback_count("e1") == 1
