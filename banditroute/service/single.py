"""LearningService: one process decides, joins feedback, learns, expires and checkpoints.

At start it recovers from its log (recovery.recover): nothing acknowledged before a kill -9 is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import structlog

from banditroute import features
from banditroute.config import Config
from banditroute.joiner import COMPLETE, NOT_PENDING
from banditroute.router import Router
from banditroute.service import recovery
from banditroute.service.base import Clock, OpenLog, Receipt, Service, UnknownEvent
from banditroute.store.base import LogStore
from banditroute.store.datadir import LearnerLock
from banditroute.store.prune import Pruned
from banditroute.telemetry.observers import Observers
from banditroute.telemetry.shadow import ShadowTracker
from banditroute.types import FeedbackPart

log = structlog.get_logger("banditroute")

_RECENT_MAX = 100_000
_TENANT_UNKNOWN = object()  # in `_recent`: finished, tenant not at hand (read the decision if needed)
# Joins finished per turn of the event loop when many are overdue at once (after a long stop): each
# slice takes milliseconds, and requests are served between slices.
_EXPIRE_SLICE = 500


@dataclass(frozen=True, slots=True)
class _Known:
    tenant: str | None
    parts: int


class LearningService(Service[_Known]):
    kind = "single"

    def __init__(
        self,
        opened: OpenLog,
        recovered: recovery.Recovered,
        observers: Observers,
        *,
        config_path: str | Path | None,
        clock: Clock,
        lock: LearnerLock,
    ):
        super().__init__(
            opened,
            recovered.router,
            observers,
            config_path=config_path,
            clock=clock,
            checkpointed_seq=recovered.checkpoint_seq,
        )
        self.changes.extend(recovered.changes)
        # Events finished recently, with their tenant: known without a database read. Bounded.
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._lock = lock

    @classmethod
    def _assemble(cls, config: Config, opened: OpenLog, *, config_path: str | Path | None, clock: Clock) -> Self:
        store = opened.store
        observers = Observers(config)
        _restore_shadow(observers.shadow, store)
        observers.outcomes.restore(store.outcomes_per_model())
        now = clock()

        def restore(router: Router) -> None:
            recovery.restore_counts(router, store)
            recovery.restore_live_state(router, store, now)

        # One learner per log: a second one would learn every join twice (LearnerRunning if taken).
        lock = LearnerLock.acquire(config.server.data_dir)
        try:
            return cls._recovered(config, opened, observers, restore, lock, config_path=config_path, clock=clock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _recovered(
        cls,
        config: Config,
        opened: OpenLog,
        observers: Observers,
        restore: Callable[[Router], None],
        lock: LearnerLock,
        *,
        config_path: str | Path | None,
        clock: Clock,
    ) -> Self:
        """The rest of `_assemble`, with the learner's lock held: recovery and the service around it."""
        store = opened.store
        recovered = recovery.recover(
            store,
            config,
            sink=opened.eventlog,
            word_key=features.word_key(opened.secret),
            observer=observers,
            before_pending=restore,
        )
        service = cls(opened, recovered, observers, config_path=config_path, clock=clock, lock=lock)
        router = recovered.router
        # Decisions whose window passed while the service was down are finished by the expire loop,
        # in slices, once it serves: start-up does not wait for them.
        log.info(
            "recovered",
            db=str(service.db_path),
            auth=service.auth_summary(),
            checkpoint_seq=recovered.checkpoint_seq,
            replayed=recovered.relearned,
            pending_restored=recovered.pending,
            models=list(router.catalog.names),
            exploration=router.config.policy.exploration,
        )
        service.metrics.watch(
            pending=lambda: len(router.joiner),
            write_queue=opened.eventlog.pending,
            in_cooldown=lambda: len(router.cooldowns.active(clock())),
        )
        service._publish_settings()
        return service

    def _loops(self) -> list[tuple[float, Callable[[], Any]]]:
        server = self.config.server
        loops: list[tuple[float, Callable[[], Any]]] = [
            (server.expire_interval_s, self.expire),
            (server.checkpoint_interval_s, self.checkpoint),
        ]
        if self.config.store.retention_days > 0:
            loops.append((self.config.store.prune_interval_s, self.prune))
        return loops

    async def stop(self) -> None:
        await self._stop_tasks()
        with contextlib.suppress(Exception):  # the log keeps everything a checkpoint would: it is relearned
            await self.checkpoint()
        try:
            await super().stop()
        finally:
            self._lock.release()

    @property
    def recent_events(self) -> int:
        return len(self._recent)

    # -- feedback ---------------------------------------------------------------------------

    async def _known(self, event_id: str) -> _Known:
        pending = self.router.pending(event_id)
        if pending is not None:
            return _Known(*pending)
        tenant = self._recent.get(event_id, _TENANT_UNKNOWN)
        if tenant is _TENANT_UNKNOWN:
            decision = await self.eventlog.call(self.store.decision, event_id)
            if decision is None:
                raise UnknownEvent(event_id)
            tenant = decision.tenant
        return _Known(tenant, await self.eventlog.call(self.store.feedback_count, event_id))

    def _accept(self, part: FeedbackPart, known: _Known) -> Receipt:
        result = self.router.feedback(part, self.clock())
        if result.status == COMPLETE:
            self._remember(part.event_id, known.tenant)
        status = {COMPLETE: "learned", NOT_PENDING: "late"}.get(result.status, "pending")
        applied = None if part.quality is None else bool(result.quality_applied) and status != "late"
        return Receipt(status, applied, result.learned)

    # -- background -------------------------------------------------------------------------

    async def expire(self) -> int:
        """Finish every join whose window has passed, a slice per turn of the event loop; how many."""
        finished = 0
        while True:
            rows = self.router.expire(self.clock(), _EXPIRE_SLICE)
            for row in rows:
                self._remember(row.event_id, _TENANT_UNKNOWN)
                self.metrics.expired.inc()
                log.info("reward", event_id=row.event_id, status="expired", reward=row.reward, defaulted=row.defaulted)
            finished += len(rows)
            if len(rows) < _EXPIRE_SLICE:
                return finished
            await asyncio.sleep(0)

    async def prune(self) -> Pruned:
        """Apply `store.retention_days`: batch after batch on the writer thread, the writes in between."""
        total = Pruned()
        before = recovery.prune_horizon(self.router, self.clock())
        while before is not None:
            done = await self.eventlog.call(self.store.prune_batch, before, recovery.PRUNE_BATCH)
            total.add(done)
            for event_id in done.event_ids:  # no longer known: a late part for one is refused, not stored
                self._recent.pop(event_id, None)
            if done.decisions < recovery.PRUNE_BATCH:
                break
        if total.decisions:
            log.info("pruned", decisions=total.decisions, feedback_parts=total.feedback_parts, before=before)
        return total

    def _remember(self, event_id: str, tenant: Any) -> None:
        self._recent[event_id] = tenant
        if len(self._recent) > _RECENT_MAX:
            self._recent.popitem(last=False)


def _restore_shadow(shadow: ShadowTracker, store: LogStore) -> None:
    """The shadow estimate from the log (before pending joins finish at start: they add to it)."""
    shadow.decisions, shadow.matched = store.shadow_counts()
    for reward, probability in store.shadow_outcomes():
        shadow.learned(reward, probability)
