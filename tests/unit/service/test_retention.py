"""Retention on a real SQLite log: what `Store.prune` removes and keeps, and that recovery, the counters,
export-log and OPE work on what remains as they did before."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.cli import main
from banditroute.config import Config
from banditroute.retention import DAY_S
from banditroute.retrain import export_row
from banditroute.router import Router
from banditroute.service.learner import Learner
from banditroute.service.recovery import checkpoint_of, prune_horizon, recover
from banditroute.service.single import LearningService
from banditroute.store.datadir import db_path
from banditroute.store.sqlite import Store
from banditroute.types import Decision, FeedbackPart
from simulators.ope import rounds_from_store
from tests.conftest import config_text, make_config
from tests.support.store_sink import StoreSink

KEY = b"k" * 32
QUERIES = ["Write a Python function that sorts a list", "What is the capital of Peru?", "Prove Fermat's theorem"]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, rules={"budget_period_s": DAY_S})


def fill(config: Config, store: Store) -> tuple[Router, list[Decision]]:
    """One decision a day for 30 days; days 0-24 get their feedback (and learn at once), 25-29 stay
    pending; the checkpoints kept cover the joins learned up to day 19, 21 and 23."""
    router = Router(config, sink=StoreSink(store), word_key=KEY)
    decisions = []
    for day in range(30):
        now = day * DAY_S
        d = router.route(QUERIES[day % 3] + f" (day {day})", {"task": "qa"}, now=now)
        decisions.append(d)
        if day < 25:
            for part in (
                FeedbackPart(d.event_id, now + 1, latency_ms=700.0, input_tokens=30, output_tokens=80),
                FeedbackPart(d.event_id, now + 2, quality=0.5 + 0.02 * day, source="user"),
                FeedbackPart(d.event_id, now + 3, quality=0.1, source="judge"),  # late: kept, not learned
            ):
                store.write(parts=[part])
                router.feedback(part, part.ts)
        if day in (19, 21, 23):
            checkpoint = checkpoint_of(router, now)
            assert checkpoint is not None
            store.write(checkpoint=checkpoint)
    return router, decisions


def test_prune_removes_only_old_finished_events_every_checkpoint_covers(config: Config, tmp_path: Path) -> None:
    store = Store(db_path(config.server.data_dir))
    live, decisions = fill(config, store)
    counts, selections, rewards = store.counts(), store.selection_counts(), store.rewards_per_model()
    before = recover(store, config, sink=StoreSink(store), word_key=KEY).router

    done = store.prune(before_ts=27 * DAY_S, batch=7)  # batches of 7, 7 and 6
    assert done.covered_seq == 20 and done.decisions == 20 and done.feedback_parts == 60 and done.batches == 3
    kept = [d.event_id for d, _, _ in store.joined_log()]
    assert kept == [d.event_id for d in decisions[20:]]  # days 20-24: not covered by every checkpoint; 25+: pending
    assert store.counts() == counts and store.selection_counts() == selections
    assert store.rewards_per_model() == rewards  # the cold-start counts a restart reads do not shrink
    assert store.prune(before_ts=27 * DAY_S).decisions == 0 and store.integrity_ok()

    after = recover(store, config, sink=StoreSink(store), word_key=KEY)
    assert after.router.policy.serialize() == before.policy.serialize() == live.policy.serialize()
    assert after.pending == 5 and after.router.learned_seq == live.learned_seq

    rows = [export_row(*entry) for entry in store.joined_log()]
    assert [r["event_id"] for r in rows] == kept
    assert all(len(r["feedback"]) == 3 and r["learned"] is not None for r in rows[:5])
    assert len(rounds_from_store(db_path(config.server.data_dir))) == 5  # OPE: the learned rounds that remain
    probe = "What is the capital of Chile?"
    assert after.router.route(probe, now=31 * DAY_S).pmf == live.route(probe, now=31 * DAY_S).pmf
    store.close()


def test_the_horizon_is_retention_days_ago_but_never_inside_the_current_budget_period(tmp_path: Path) -> None:
    def horizon(**sections: dict[str, float]) -> float | None:
        return prune_horizon(Router(make_config(tmp_path, **sections)), 30.5 * DAY_S)

    assert horizon(store={"retention_days": 7}, rules={"budget_period_s": DAY_S}) == 23.5 * DAY_S
    assert horizon(store={"retention_days": 0.25}, rules={"budget_period_s": DAY_S}) == 30 * DAY_S
    assert horizon(store={"retention_days": 7}, rules={"budget_period_s": 400 * DAY_S}) == 0.0  # since the epoch
    assert horizon() is None  # retention_days = 0: keep everything


async def test_the_service_and_the_learner_prune_on_their_own(tmp_path: Path) -> None:
    for kind in ("service", "learner"):
        config = make_config(tmp_path / kind, store={"retention_days": 1, "prune_interval_s": 3600})
        store = Store(db_path(config.server.data_dir))
        fill(config, store)
        store.close()
        if kind == "service":
            service = await LearningService.open(config)
            assert (3600, service.prune) in service._loops()
            assert (await service.prune()).decisions == 20
            await service.stop()
        else:
            learner = Learner(config)
            learner.step()  # the first step prunes (a batch); the next ones only once the interval has passed
            learner.store.close()
        # The learner's step first published a checkpoint (learned seq 30), which retired the oldest (20):
        # every checkpoint kept then covers up to 22.
        kept = {"service": 10, "learner": 8}[kind]
        store = Store(db_path(config.server.data_dir))
        assert store.counts()["decisions"] == 30 and len(list(store.joined_log())) == kept
        store.close()


def test_prune_cli_applies_the_configured_days_and_refuses_zero(config: Config, tmp_path: Path, capsys) -> None:
    import orjson

    store = Store(db_path(config.server.data_dir))
    fill(config, store)
    store.close()
    toml = tmp_path / "retain.toml"
    text = config_text().replace('data_dir = "var"', f'data_dir = "{config.server.data_dir}"', 1)
    toml.write_text(text + "\n[store]\nretention_days = 1\n")
    assert main(["prune", "--config", str(toml)]) == 0  # now is decades after day 29: all covered events go
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["decisions"] == 20 and summary["feedback_parts"] == 60 and summary["covered_seq"] == 20
    assert main(["prune", "--config", str(toml), "--days", "0"]) == 2
    assert "retention_days is 0" in capsys.readouterr().err


def test_a_checkpoint_that_fails_its_checksum_covers_nothing(config: Config) -> None:
    store = Store(db_path(config.server.data_dir))
    fill(config, store)
    store.conn.execute("UPDATE checkpoints SET sha256 = 'x' WHERE learned_seq = 20")  # never loaded by recovery
    assert store.prune(before_ts=27 * DAY_S).covered_seq == 22
    assert len(list(store.joined_log())) == 8
    store.close()
