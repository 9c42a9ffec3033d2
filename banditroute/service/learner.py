"""The cluster's learner (`serve --workers N`): tails the log, joins, learns, publishes snapshots.

The serving processes append decisions and feedback parts to the shared SQLite log; the learner
reads them by `seq`, joins them, expires, learns, appends the learned rows and publishes a snapshot
(a checkpoint row) at most every `cluster.publish_interval_s`. The log is the only interface
between deciding and learning, so the learner restarts like the single-process service
(recovery.recover): nothing acknowledged is lost.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

import structlog

from banditroute import features
from banditroute.config import Config
from banditroute.policy import Policy, PolicyError
from banditroute.router import MemorySink
from banditroute.service import recovery
from banditroute.service.base import Clock
from banditroute.store.base import LogStore, is_postgres, open_store, reward_secret
from banditroute.store.datadir import LearnerLock
from banditroute.store.sqlite import StoreError

log = structlog.get_logger("banditroute.service.learner")

# A learner restarted while its predecessor still stops (its last publish) waits this long for the lock.
LOCK_WAIT_S = 15.0


class Learner:
    """Synchronous; the clock is injected."""

    def __init__(
        self, config: Config, *, clock: Clock = time.time, store: LogStore | None = None, lock_wait_s: float = 0.0
    ):
        """`store`: the log to learn from, given by a caller that holds the log's election (the elected
        host's own session, election.py); default: the configured SQLite log, whose election is the
        data directory's LearnerLock: raises LearnerRunning when another process learns from it (after
        `lock_wait_s`). A PostgreSQL log is shared by hosts with a data directory each, so a file lock
        cannot elect its learner: it needs the database's lock, hence a store."""
        self.clock = clock
        self.config = config
        self.publish_interval_s = config.cluster.publish_interval_s
        self.poll_s = config.cluster.learner_poll_s
        # One learner per log, for this object's life (`close`): two would learn every join twice.
        self._lock: LearnerLock | None = None
        if store is None:
            if is_postgres(config.store.url):
                raise ValueError("a learner over PostgreSQL runs in a host's LearnerSeat (election.py)")
            self._lock = LearnerLock.acquire(config.server.data_dir, lock_wait_s)
        try:
            self.store = store if store is not None else open_store(config)
        except BaseException:
            self._release_lock()
            raise
        # The learned rows of a step, appended to the log at its end. The learner never decides.
        self._rows = MemorySink()
        # The serving processes' key: learning at start reads no query, but relearned and live must agree.
        try:
            secret = reward_secret(config, self.store, os.environ)
            recovered = recovery.recover(self.store, config, sink=self._rows, word_key=features.word_key(secret))
        except BaseException:
            self.close()
            raise
        self.router = recovered.router
        self.changes_seq = recovered.changes_seq
        self.decision_seq, self.feedback_seq = recovered.decision_seq, recovered.feedback_seq
        self.published_seq = recovered.checkpoint_seq
        self._published_at = float("-inf")
        self.prune_interval_s = config.store.prune_interval_s
        self._pruned_at = float("-inf")
        self._pruning = False  # the last batch was full: the next step prunes on
        log.info(
            "learner_started",
            checkpoint_seq=recovered.checkpoint_seq,
            replayed=recovered.relearned,
            pending_restored=recovered.pending,
        )

    def step(self) -> int:
        """Fold in what was appended since the last step; returns the number of joins finished."""
        now = self.clock()
        decisions, parts = self.store.tail(self.decision_seq, self.feedback_seq)
        if decisions:
            self.decision_seq = decisions[-1][0]
        if parts:
            self.feedback_seq = parts[-1][0]
        # The operator's changes (reward weights above all) logged by any serving process.
        changes = self.store.config_changes_after(self.changes_seq)
        self.changes_seq = recovery.follow_changes(self.router, changes, self.changes_seq)
        for _, change in changes:
            if change.kind == recovery.POLICY_LOADED:
                self._adopt(change.payload.get("checkpoint_sha256"))
        before = self.router.learned_seq
        self.router.restore_pending((d for _, d in decisions), (p for _, p in parts))
        self.router.expire(now)
        checkpoint = None
        due = now - self._published_at >= self.publish_interval_s
        if due and self.router.learned_seq != self.published_seq:
            checkpoint = recovery.checkpoint_of(self.router, now)
        learned = self._rows.learned_rows
        if learned or checkpoint is not None:
            self.store.write(learned=learned, checkpoint=checkpoint)  # StoreError: kept for the next step
            self._rows.learned_rows = []
        if checkpoint is not None:
            self.published_seq, self._published_at = checkpoint.learned_seq, now
            log.info("snapshot_published", learned_seq=checkpoint.learned_seq, bytes=len(checkpoint.model))
        self._prune(now)
        return self.router.learned_seq - before

    def _adopt(self, sha256: object) -> None:
        """Learn on top of a policy an operator loaded on a serving process (its checkpoint row), and
        publish it at the next step, so every process serves it rather than the learner's older one."""
        for ckpt, checksum_ok in self.store.checkpoints():
            if checksum_ok and hashlib.sha256(ckpt.model).hexdigest() == sha256:
                try:
                    policy = Policy(self.config.policy, self.config.models, model_data=ckpt.model)
                except PolicyError as exc:
                    log.error("loaded_policy_not_adopted", reason=str(exc))
                    return
                self.router.set_policy(policy)
                self.published_seq, self._published_at = -1, float("-inf")
                log.info("loaded_policy_adopted", sha256=sha256)
                return
        log.warning("loaded_policy_not_adopted", reason="its checkpoint is no longer in the log", sha256=sha256)

    def _prune(self, now: float) -> None:
        """Apply `store.retention_days`, one batch a step, so the learner never stalls on a large backlog."""
        if not self._pruning and now - self._pruned_at < self.prune_interval_s:
            return
        self._pruned_at = now
        before = recovery.prune_horizon(self.router, now)
        if before is None:
            return
        done = self.store.prune_batch(before, recovery.PRUNE_BATCH)
        self._pruning = done.decisions == recovery.PRUNE_BATCH
        if done.decisions:
            log.info("pruned", decisions=done.decisions, feedback_parts=done.feedback_parts, before=before)

    def publish(self) -> None:
        """Publish now, whatever the interval (at shutdown)."""
        self._published_at = float("-inf")
        self.step()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except StoreError as exc:  # the next step retries; nothing read was lost
                log.error("learner_step_failed", error=str(exc))
            stop.wait(self.poll_s)
        try:
            self.publish()
        finally:
            self.close()

    def close(self) -> None:
        self.store.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
