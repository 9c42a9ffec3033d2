"""ServingService: a serving process of `serve --workers N`. Decides and stores; never joins.

It decides from the learner's newest snapshot (a checkpoint row), appends its decisions and the
feedback parts it receives to the shared log, and follows what the learner and the other processes
log: snapshots, finished joins (for the rules' online state) and operator changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import structlog

from banditroute import features
from banditroute.config import Config
from banditroute.router import Router
from banditroute.service import recovery
from banditroute.service.base import Clock, OpenLog, Receipt, Service, UnknownEvent
from banditroute.store.base import EventState, LogStore, describe, open_store
from banditroute.telemetry.observers import Observers
from banditroute.types import FeedbackPart

log = structlog.get_logger("banditroute")


class _Reader:
    """Reward look-ups on their own connection and thread, so they run while the writer thread waits
    for a commit's fsync (WAL readers do not wait for the writer)."""

    def __init__(self, store: LogStore):
        self._store = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="banditroute-reader")

    async def event_state(self, event_id: str) -> EventState | None:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._store.event_state, event_id)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._store.close()


class ServingService(Service[EventState]):
    kind = "serving"

    def __init__(
        self,
        opened: OpenLog,
        router: Router,
        observers: Observers,
        *,
        config_path: str | Path | None,
        clock: Clock,
        snapshot_id: int,
        followed_seq: int,
        changes_seq: int,
    ):
        super().__init__(opened, router, observers, config_path=config_path, clock=clock, checkpointed_seq=0)
        self._snapshot_id = snapshot_id  # the checkpoint row the policy was loaded from
        self._followed_seq = followed_seq  # the last learned row folded into the online state
        self._changes_seq = changes_seq  # the last operator change applied
        self._reader = _Reader(open_store(self.config))

    @classmethod
    def _assemble(cls, config: Config, opened: OpenLog, *, config_path: str | Path | None, clock: Clock) -> Self:
        store = opened.store
        observers = Observers(config)
        snapshot_id = store.newest_checkpoint_seq()
        policy, seq = recovery.load_policy(store, config)
        # joins=False: the learner joins and learns from the log.
        router = Router(
            config,
            policy=policy,
            learned_seq=seq,
            sink=opened.eventlog,
            joins=False,
            observer=observers,
            word_key=features.word_key(opened.secret),
        )
        recovery.restore_live_state(router, store, clock())
        followed_seq = store.max_learned_seq()
        observers.outcomes.restore(store.outcomes_per_model(followed_seq))  # the rest: follow_learner
        changes_seq = recovery.follow_changes(router, store.config_changes_after(0), 0)
        service = cls(
            opened,
            router,
            observers,
            config_path=config_path,
            clock=clock,
            snapshot_id=snapshot_id,
            followed_seq=followed_seq,
            changes_seq=changes_seq,
        )
        log.info("recovered", role=cls.kind, db=describe(config), policy_learned_seq=router.learned_seq)
        return service

    def _loops(self) -> list[tuple[float, Callable[[], Any]]]:
        return [(self.config.cluster.reload_interval_s, self.follow_learner)]

    async def stop(self) -> None:
        await super().stop()
        self._reader.close()

    # -- following the learner --------------------------------------------------------------

    async def follow_learner(self) -> None:
        """The learner's newest snapshot, and the joins it finished since the last look (cold-start
        counts, latencies and spend for the rules), and the operator changes any process logged."""
        await self.reload_snapshot()
        store = self.store
        rows = await self.eventlog.call(lambda: list(store.learned_after(self._followed_seq)))
        for row, decision in rows:
            self.router.observe_learned(row, decision)
            self.outcomes.learned(decision.model, row)
            self._followed_seq = row.seq
        changes = await self.eventlog.call(store.config_changes_after, self._changes_seq)
        self._changes_seq = recovery.follow_changes(self.router, changes, self._changes_seq)

    async def reload_snapshot(self) -> None:
        """Take the learner's newest snapshot when there is one this process has not loaded."""
        newest = await self.eventlog.call(self.store.newest_checkpoint_seq)
        if newest == self._snapshot_id:
            return
        policy, seq = await self.eventlog.call(recovery.load_policy, self.store, self.config)
        self._snapshot_id = newest
        if policy is not None:
            self.router.policy = policy
            self.router.learned_seq = seq
            log.info("snapshot_loaded", policy_learned_seq=seq)

    # -- feedback: stored for the learner ----------------------------------------------------

    async def _known(self, event_id: str) -> EventState:
        # The event may have been decided by another process, so it is read from the log. `/route`
        # answers after its commit, so an id a client holds is always there.
        known = await self._reader.event_state(event_id)
        if known is None:
            raise UnknownEvent(event_id)
        return known

    def _accept(self, part: FeedbackPart, known: EventState) -> Receipt:
        """The learner tails the log and joins the part; `late` when the join had finished."""
        self.router.counts["feedback_parts"] += 1
        if part.error is not None and not known.learned:
            self.router.observe_failure(known.model, self.clock())  # cooldowns: the failures this process hears of
        return Receipt("late" if known.learned else "pending")
