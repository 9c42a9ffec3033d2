"""The multi-process mode (`banditroute serve --workers N`): the Decision Service shape on one machine.

- N serving processes share the port (SO_REUSEPORT). Each decides from a policy snapshot, appends
  its decisions and feedback parts to the shared SQLite log (WAL) and answers only once they are
  committed. A reward may reach any of them: an event another process logged is found in the log.
- One learner process tails the log (decisions and parts by `seq`), joins them, expires, learns,
  appends the learned rows and publishes a snapshot (a checkpoint row) at most every
  `cluster.publish_interval_s`. The serving processes reload it within `cluster.reload_interval_s`.
- This process supervises: it starts them, restarts one that dies, and stops them on SIGINT/SIGTERM.

The log is the only interface between deciding and learning, so the learner restarts like the
single-process service: from its newest checkpoint, replaying what was learned after it, then
waiting again for the decisions still pending.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from banditroute.config import Config
from banditroute.router import Router
from banditroute.service.base import SERVING, apply_change, load_policy
from banditroute.store.datadir import DB_NAME
from banditroute.store.sqlite import Checkpoint, Store, StoreError
from banditroute.types import Decision, LearnedRow

log = structlog.get_logger("banditroute.service.cluster")

_STOP_GRACE_S = 10.0  # how long a child may take to drain before it is killed
_SUPERVISE_S = 0.2  # how often the supervisor checks its children


class Learner:
    """Tails the log, joins, learns, publishes snapshots. Synchronous; the clock is injected."""

    def __init__(self, config: Config, *, clock: Any = time.time):
        self.config = config
        self.clock = clock
        self.store = Store(Path(config.server.data_dir) / DB_NAME)
        self._learned: list[LearnedRow] = []
        policy, seq = load_policy(self.store, config)
        self.router = Router(config, policy=policy, sink=self, learned_seq=seq)
        self.changes_seq = 0
        self._follow_changes()
        replayed = self.router.relearn(self.store.learned_after(seq))
        self.router.learned_seq = max(self.router.learned_seq, self.store.max_learned_seq())
        decisions, parts, self.decision_seq, self.feedback_seq = self.store.unlearned_state()
        self.router.restore_pending(decisions, parts)
        self.published_seq = seq
        self._published_at = float("-inf")
        log.info("learner_started", checkpoint_seq=seq, replayed=replayed, pending_restored=len(decisions))

    # LogSink: the learner never decides; it appends what it learned at the end of each step.
    def decision(self, decision: Decision) -> None:
        raise AssertionError("the learner does not route")

    def learned(self, row: LearnedRow) -> None:
        self._learned.append(row)

    def step(self) -> int:
        """Fold in what was appended since the last step; returns the number of joins finished."""
        now = self.clock()
        decisions, parts = self.store.tail(self.decision_seq, self.feedback_seq)
        if decisions:
            self.decision_seq = decisions[-1][0]
        if parts:
            self.feedback_seq = parts[-1][0]
        self._follow_changes()
        before = self.router.learned_seq
        self.router.restore_pending((d for _, d in decisions), (p for _, p in parts))
        self.router.expire(now)
        checkpoint = None
        due = now - self._published_at >= self.config.cluster.publish_interval_s
        if due and self.router.learned_seq != self.published_seq:
            checkpoint = Checkpoint(
                self.router.learned_seq, self.router.policy.args, self.router.policy.serialize(), now
            )
        if self._learned or checkpoint is not None:
            self.store.write(learned=self._learned, checkpoint=checkpoint)  # StoreError: kept for the next step
            self._learned = []
        if checkpoint is not None:
            self.published_seq, self._published_at = checkpoint.learned_seq, now
            log.info("snapshot_published", learned_seq=checkpoint.learned_seq, bytes=len(checkpoint.model))
        return self.router.learned_seq - before

    def _follow_changes(self) -> None:
        """The operator's changes (reward weights above all) logged by any serving process."""
        for seq, change in self.store.config_changes_after(self.changes_seq):
            apply_change(self.router, change)
            self.changes_seq = seq

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
            stop.wait(self.config.cluster.learner_poll_s)
        try:
            self.publish()
        finally:
            self.store.close()


def _learner_main(config: Config, log_level: str, config_path: str | None) -> None:
    from banditroute.telemetry import logs

    logs.configure(log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Learner(config).run(stop)


def _server_main(config: Config, log_level: str, config_path: str | None) -> None:
    from banditroute.http.app import run
    from banditroute.telemetry import logs

    logs.configure(log_level)
    run(config, config_path, role=SERVING, reuse_port=True)


def run_cluster(config: Config, workers: int, log_level: str = "info", config_path: str | None = None) -> int:
    """Start the learner and `workers` serving processes; supervise them until SIGINT/SIGTERM."""
    Store(Path(config.server.data_dir) / DB_NAME).close()  # the schema, once, before the children race
    ctx = multiprocessing.get_context("spawn")
    targets = {"learner": _learner_main, **{f"server-{i}": _server_main for i in range(workers)}}
    children: dict[str, Any] = {}

    def start(name: str) -> None:
        proc = ctx.Process(
            target=targets[name], args=(config, log_level, config_path), name=f"banditroute-{name}", daemon=False
        )
        proc.start()
        children[name] = proc

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for name in targets:
        start(name)
    log.info(
        "cluster_started",
        workers=workers,
        port=config.server.port,
        pids={name: proc.pid for name, proc in children.items()},
    )
    while not stop.wait(_SUPERVISE_S):
        for name, proc in list(children.items()):
            if not proc.is_alive():
                log.error("child_died_restarting", child=name, exitcode=proc.exitcode)
                start(name)
    for proc in children.values():
        proc.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in children.values():
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
    log.info("cluster_stopped")
    return 0
