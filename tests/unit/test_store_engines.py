"""The log's interface has one meaning on both engines: the same calls, the same answers, on SQLite and
on a real PostgreSQL (a throwaway cluster, `postgres` fixture). PostgreSQL's own promises follow:
the order of the log under concurrent writers, the learner's lock, reconnection, the shared secret."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from banditroute.config import ConfigError, load_config
from banditroute.store.base import Checkpoint, EventState, LogStore, open_store, reward_secret
from banditroute.store.errors import StoreError
from banditroute.store.postgres import PG_SCHEMA_VERSION, PostgresStore, redacted
from banditroute.store.sqlite import Store
from banditroute.types import ConfigChange, Decision, FeedbackPart, JudgeSample, LearnedRow
from tools.pgcluster import PostgresCluster


def decision(eid: str, chosen: int = 1, tenant: str | None = "t1", ts: float = 1.5) -> Decision:
    return Decision(eid, ts, "|w hi |x chars2", ("a", "b"), chosen, (0.25, 0.75), True, "why", 3, tenant)


def learned(seq: int, eid: str, vw_cost: float | None = 0.2, latency: float = 10.0, cost: float = 0.5) -> LearnedRow:
    return LearnedRow(seq, eid, 2.0, 0.8, 0.8, cost, latency, vw_cost, "", 0.1, 0.0)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    if request.param == "sqlite":
        opened: LogStore = Store(tmp_path / "log.db")
    else:
        opened = PostgresStore(request.getfixturevalue("pg_url"))
    yield opened
    opened.close()


def test_the_same_batch_reads_back_the_same_on_both_engines(store: LogStore) -> None:
    store.write(
        [decision("e1"), decision("e2", chosen=0, tenant=None), decision("e3")],
        [FeedbackPart("e1", 2.0, quality=0.8), FeedbackPart("e2", 2.0, latency_ms=5.0, source="system")],
        [learned(1, "e1")],
        changes=[ConfigChange(3.0, "weights", {"cost_weight": 0.5, "latency_weight": 0.0})],
    )
    assert store.decision("e1") == decision("e1")
    assert store.decision("missing") is None
    assert store.feedback_count("e1") == 1 and store.feedback_count("e3") == 0
    assert store.is_learned("e1") and not store.is_learned("e2")
    assert store.event_state("e1") == EventState("b", "t1", True, 1)
    assert store.event_state("e2") == EventState("a", None, False, 1)
    assert store.event_state("nope") is None
    assert [(r.seq, d.event_id) for r, d in store.learned_after(0)] == [(1, "e1")]
    assert list(store.learned_after(1)) == []
    pending, parts, max_decision, max_feedback = store.unlearned_state()
    assert [d.event_id for d in pending] == ["e2", "e3"] and [p.event_id for p in parts] == ["e2"]
    assert (max_decision, max_feedback) == (3, 2)
    decisions, tailed = store.tail(1, 1)
    assert [(n, d.event_id) for n, d in decisions] == [(2, "e2"), (3, "e3")]
    assert [(n, p.event_id, p.source) for n, p in tailed] == [(2, "e2", "system")]
    assert store.counts() == {"decisions": 3, "feedback_parts": 2, "learned": 1, "joins_finished": 1}
    assert store.selection_counts() == {"b": 2, "a": 1}
    assert store.rewards_per_model() == {"b": 1}
    assert store.spend_since(0.0) == {"t1": 0.5}
    assert store.recent_latencies(5) == [("b", 10.0)]
    assert store.outcomes_per_model() == [("b", 1, 0.8, 1, 0.5)]
    assert store.config_changes_after(0) == [
        (1, ConfigChange(3.0, "weights", {"cost_weight": 0.5, "latency_weight": 0.0}))
    ]
    assert [(d.event_id, r is not None, len(p)) for d, r, p in store.joined_log()] == [
        ("e1", True, 1),
        ("e2", False, 1),
        ("e3", False, 0),
    ]
    store.write([decision("e1")], learned=[learned(2, "e1")])  # neither a decision nor a join is duplicated
    assert store.counts()["decisions"] == 3 and store.counts()["joins_finished"] == 1
    assert store.feedback(None)[0] == FeedbackPart("e1", 2.0, quality=0.8)


def test_checkpoints_are_kept_newest_first_with_their_checksum(store: LogStore) -> None:
    assert store.newest_checkpoint_seq() == 0
    for i in range(5):
        store.write(checkpoint=Checkpoint(i, ["--cb_explore_adf"], f"model{i}".encode(), float(i)))
    assert [(c.learned_seq, c.model, ok) for c, ok in store.checkpoints()] == [
        (4, b"model4", True),
        (3, b"model3", True),
        (2, b"model2", True),
    ]
    assert store.newest_checkpoint_seq() == 5


def test_a_failed_batch_writes_nothing(store: LogStore) -> None:
    with pytest.raises(StoreError):
        store.write([decision("e1")], [FeedbackPart(None, 1.0, quality=1.0)])  # type: ignore[arg-type]
    assert store.counts()["decisions"] == 0
    store.write([decision("e2")])  # and the store goes on
    assert store.counts()["decisions"] == 1


def parts_of(event_id: str, n: int) -> list[FeedbackPart]:
    return [FeedbackPart(event_id, float(i), quality=0.5) for i in range(n)]


def test_parts_beyond_the_limit_are_refused_within_and_across_batches(store: LogStore) -> None:
    store.write([decision("a"), decision("b")])
    assert store.write(parts=parts_of("a", 3), max_parts_per_event=4) == set()
    assert store.write(parts=[*parts_of("a", 3), *parts_of("b", 2)], max_parts_per_event=4) == {1, 2}
    assert store.feedback_count("a") == 4 and store.feedback_count("b") == 2
    assert store.write(parts=parts_of("b", 5), max_parts_per_event=4) == {2, 3, 4}
    assert store.write(parts=parts_of("a", 2)) == set()  # no limit given: stored as before
    assert store.feedback_count("a") == 6 and store.feedback_count("b") == 4
    # The refused parts are the only ones left out: the rest of the batch is committed with them.
    assert store.write([decision("c")], parts_of("c", 3), max_parts_per_event=1) == {1, 2}
    assert store.decision("c") == decision("c") and store.feedback_count("c") == 1


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_concurrent_writers_never_store_more_parts_than_the_limit(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The count and the insert are one transaction: writers on separate sessions (as on separate
    processes or hosts) racing for one event's last places store exactly the limit between them."""
    writers, batches, limit = 4, 10, 7

    url = request.getfixturevalue("pg_url") if engine == "postgres" else ""

    def opened() -> LogStore:
        return Store(tmp_path / "log.db") if engine == "sqlite" else PostgresStore(url)

    first = opened()
    first.write([decision("hot")])
    refused: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write() -> None:
        store = opened()
        try:
            start.wait()
            for _ in range(batches):
                refused.append(len(store.write(parts=parts_of("hot", 2), max_parts_per_event=limit)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert first.feedback_count("hot") == limit
    assert sum(refused) == writers * batches * 2 - limit  # every part either stored or reported refused
    first.close()


def test_the_judge_queue_and_spend(store: LogStore) -> None:
    store.write([decision("e1"), decision("e2")], [FeedbackPart("e2", 1.0, quality=1.0, source="user")])
    store.put_sample(JudgeSample("e1", 10.0, "a", "[]", "hi"), keep_after=0.0, max_samples=10)
    store.put_sample(JudgeSample("e2", 11.0, "a", "[]", "yo"), keep_after=0.0, max_samples=10)
    assert [s.event_id for s in store.due_samples(10.5, 10)] == ["e1"]
    store.finish_sample(JudgeSample("e1", 10.0, "a", "[]", "hi", "judged", 1, 0.7, 0.001), spent_usd=0.001)
    store.add_judge_spend(0.002)
    assert store.judge_spend() == pytest.approx(0.003)
    assert [(s.event_id, s.status) for s in store.samples()] == [("e1", "judged"), ("e2", "new")]
    assert store.has_quality_from("e2", "user") and not store.has_quality_from("e1", "user")
    store.prune_samples(keep_after=10.5, max_samples=10)
    assert [s.event_id for s in store.samples()] == ["e2"]


# -- PostgreSQL's own promises ----------------------------------------------------------------


def test_the_configured_url_picks_the_engine(pg_url: str, tmp_path: Path) -> None:
    config = load_config().with_overrides(store={"url": pg_url}, server={"data_dir": str(tmp_path)})
    store, other = open_store(config), PostgresStore(pg_url)
    try:
        assert isinstance(store, PostgresStore)
        one = reward_secret(config, store, {})
        assert len(one) == 32 and reward_secret(config, other, {}) == one  # every host: the same
        assert not (tmp_path / "reward_secret").exists()
    finally:
        store.close()
        other.close()
    sqlite = open_store(load_config().with_overrides(server={"data_dir": str(tmp_path)}))
    assert isinstance(sqlite, Store)
    sqlite.close()


def test_retention_is_refused_with_a_postgresql_store() -> None:
    with pytest.raises(ConfigError, match="retention_days"):
        load_config().with_overrides(store={"url": "postgresql://db/x", "retention_days": 30.0})


def test_a_schema_newer_than_the_code_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM banditroute_schema").fetchall() == [(PG_SCHEMA_VERSION,)]
        conn.execute("UPDATE banditroute_schema SET version = %s", (PG_SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer"):
        PostgresStore(pg_url)


def test_hosts_starting_together_migrate_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresStore(pg_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_tailing_by_seq_misses_nothing_while_several_hosts_append(pg_url: str) -> None:
    """Seqs are committed in order across writers, so `tail(after)` never skips a late commit."""
    writers, batches, per_batch = 4, 40, 5
    stop = threading.Event()
    seen: list[int] = []
    tail_errors: list[BaseException] = []

    def write(w: int) -> None:
        store = PostgresStore(pg_url)
        for b in range(batches):
            ids = [f"w{w}b{b}i{i}" for i in range(per_batch)]
            store.write([decision(e) for e in ids], [FeedbackPart(e, 1.0, quality=1.0) for e in ids])
        store.close()

    def tail() -> None:
        store = PostgresStore(pg_url)
        after_d = after_f = 0
        try:
            while True:
                done = stop.is_set()
                decisions, parts = store.tail(after_d, after_f)
                known = {d.event_id for _, d in decisions} | set(seen_ids)
                assert all(p.event_id in known for _, p in parts)  # a part never arrives before its decision
                for n, d in decisions:
                    seen.append(n)
                    seen_ids.add(d.event_id)
                after_d = decisions[-1][0] if decisions else after_d
                after_f = parts[-1][0] if parts else after_f
                if done:
                    return
        except BaseException as exc:
            tail_errors.append(exc)
        finally:
            store.close()

    seen_ids: set[str] = set()
    tailer = threading.Thread(target=tail)
    tailer.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    tailer.join()
    assert tail_errors == []
    everything = PostgresStore(pg_url)
    total = everything.counts()["decisions"]
    assert total == writers * batches * per_batch
    assert len(seen) == total and len(set(seen)) == total  # every decision tailed, exactly once
    assert seen == sorted(seen)
    everything.close()


def test_one_session_at_a_time_holds_the_learners_lock(pg_url: str) -> None:
    first = PostgresStore(pg_url, reconnect=False, application_name="host-a")
    second = PostgresStore(pg_url, reconnect=False, application_name="host-b")
    assert first.try_lead() and first.try_lead()  # held (re-entrant on its session)
    assert not second.try_lead()
    assert second.leader() == "host-a"
    first.close()  # the session ends: the lock is free once the server has ended its backend
    deadline = time.monotonic() + 5
    while not second.try_lead():
        assert time.monotonic() < deadline, "the lock outlived its session"
        time.sleep(0.01)
    assert second.leader() == "host-b"
    second.close()


def test_a_lost_session_reconnects_unless_it_held_the_lock(postgres: PostgresCluster, pg_url: str) -> None:
    serving = PostgresStore(pg_url)
    learner = PostgresStore(pg_url, reconnect=False)
    assert learner.try_lead()
    serving.write([decision("e1")])
    postgres.restart()
    with pytest.raises(StoreError):
        serving.counts()  # the cut session fails once...
    assert serving.counts()["decisions"] == 1  # ...and the next call reconnects
    for _ in range(2):  # the learner's session never comes back: its lock may be someone else's now
        with pytest.raises(StoreError):
            learner.max_learned_seq()
    assert serving.leader() is None
    serving.close()


def test_the_password_is_not_shown() -> None:
    assert redacted("postgresql://u:s3cret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redacted("postgresql://u@db/x") == "postgresql://u@db/x"
