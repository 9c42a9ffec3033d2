"""The running router without HTTP: what every kind of serving process shares.

A service is built complete by `await Kind.open(config, ...)`: its log open, its router ready, its
background work started. Two kinds:

- `LearningService` (single.py): one process decides, joins and learns.
- `ServingService` (serving.py): a serving process of `serve --workers N`; it decides from the
  learner's snapshots and stores feedback parts, and the cluster's `Learner` (learner.py) joins.

Both route the same way, check a feedback part the same way (the event known, its reward token,
its number of parts) before storing it, and take the same operator controls (controls.py); they
differ in how they know an event and what they do with a stored part (`_known`, `_accept`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import structlog

from banditroute import auth, pii
from banditroute.config import Config
from banditroute.router import Router
from banditroute.rules import NoModelAllowed, tagged_sensitive
from banditroute.service.controls import OperatorControls
from banditroute.store.base import LogStore, is_postgres, open_store, reward_secret
from banditroute.store.datadir import db_path, has_room
from banditroute.store.sqlite import PartsLimitReached, StoreError
from banditroute.store.writer import EventLog
from banditroute.telemetry.observers import Observers
from banditroute.types import ConfigChange, Decision, FeedbackPart, LearnedRow

log = structlog.get_logger("banditroute")

_CHANGES_SHOWN = 50  # operator changes listed on the dashboard

Clock = Callable[[], float]


async def _scan_for_pii(query: str, one_at_a_time: asyncio.Semaphore) -> frozenset[str]:
    """pii.detect(query), letting other requests run between its steps: a long query (a 4M-character
    prompt of digits takes about half a second to scan) must not stall every other client.

    One long scan at a time: between two steps of it, every other ready request runs, so a request
    waits for one step (about a millisecond of CPU), not one step of every long query in flight.
    """
    async with one_at_a_time:
        for step in pii.detect_steps(query):
            if step is not None:
                return step
            await asyncio.sleep(0)
    raise AssertionError("pii.detect_steps ends with the kinds found")


class UnknownEvent(LookupError):
    pass


class RewardRefused(Exception):
    """A feedback part that may not be applied: `status` and `code` say why (401/403/409)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class OpenLog:
    """What every kind opens first: the reward secret, the SQLite log, and its writer (started)."""

    secret: bytes
    store: LogStore
    eventlog: EventLog

    @classmethod
    def open(cls, config: Config, environ: Any) -> OpenLog:
        """Inside the running loop (the writer is an asyncio task)."""
        server = config.server
        if server.decision_ack == "enqueue":
            log.warning(
                "decision_ack_deprecated",
                message='server.decision_ack = "enqueue" is retired: /route answers after its commit, which'
                ' with server.durability = "process" (the default) waits for no fsync; remove the key',
            )
        store = open_store(config)
        try:
            secret = reward_secret(config, store, environ)
        except BaseException:
            store.close()
            raise
        eventlog = EventLog(
            store,
            server.write_batch_max,
            server.max_write_queue,
            linger_s=server.write_linger_ms / 1000.0,
            durability=server.durability,
            fsync_interval_s=server.fsync_interval_ms / 1000.0,
            max_parts_per_event=config.reward.max_parts_per_event,
        )
        eventlog.start()
        return cls(secret, store, eventlog)

    async def close(self) -> None:
        await self.eventlog.close()
        self.store.close()


class Known(Protocol):
    """What /reward must know of an event before it stores a part for it."""

    @property
    def tenant(self) -> str | None: ...
    @property
    def parts(self) -> int: ...  # feedback parts stored for it so far


K = TypeVar("K", bound=Known)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of a stored part: learned, pending or late; what the answer reports of it."""

    status: str
    quality_applied: bool | None = None  # None: not reported
    learned: LearnedRow | None = None  # the join it finished


class Service(OperatorControls, ABC, Generic[K]):
    """The shared base; a kind is built with `await Kind.open(config)` and ended with `await stop()`."""

    kind: ClassVar[str]  # /stats "role"

    def __init__(
        self,
        opened: OpenLog,
        router: Router,
        observers: Observers,
        *,
        config_path: str | Path | None,
        clock: Clock,
        checkpointed_seq: int,
    ):
        self._opened = opened
        self.secret = opened.secret
        self.store = opened.store
        self.eventlog = opened.eventlog
        self.router = router
        self.config_path = config_path
        self.clock = clock
        self.metrics = observers.metrics
        self.metrics.watch_target(lambda: self.router.target, lambda: self.router.config.reward.cost_weight)
        self.timeseries = observers.timeseries
        self.shadow = observers.shadow
        self.outcomes = observers.outcomes
        self.auth_enabled = auth.auth_enabled(router.config.auth, router.config.server.host)
        self.changes: deque[ConfigChange] = deque(maxlen=_CHANGES_SHOWN)
        self.started_at = clock()
        self._checkpointed_seq = checkpointed_seq
        self._tasks: list[asyncio.Task[None]] = []
        self.metrics.identify(self.host, lambda: self.is_learner)
        self._long_scans = asyncio.Semaphore(1)

    @classmethod
    async def open(
        cls,
        config: Config,
        *,
        config_path: str | Path | None = None,
        clock: Clock = time.time,
        environ: Any = os.environ,
    ) -> Self:
        """The service, complete: log open, router ready, background work started."""
        opened = OpenLog.open(config, environ)
        try:
            service = cls._assemble(config, opened, config_path=config_path, clock=clock)
        except BaseException:
            await opened.close()
            raise
        loop = asyncio.get_running_loop()
        service._tasks = [loop.create_task(service._every(interval, fn)) for interval, fn in service._loops()]
        return service

    @classmethod
    @abstractmethod
    def _assemble(cls, config: Config, opened: OpenLog, *, config_path: str | Path | None, clock: Clock) -> Self:
        """This kind's router from the log, and the service around it."""

    @abstractmethod
    def _loops(self) -> list[tuple[float, Callable[[], Any]]]:
        """This kind's background work: (interval in seconds, what to run)."""

    @abstractmethod
    async def _known(self, event_id: str) -> K:
        """The event a part is for; raises UnknownEvent."""

    @abstractmethod
    def _accept(self, part: FeedbackPart, known: K) -> Receipt:
        """Fold in a part that was checked and stored durably."""

    async def stop(self) -> None:
        await self._stop_tasks()
        await self._opened.close()

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def recent_events(self) -> int:
        """Finished events whose tenant is known without a database read (a process that joins keeps them)."""
        return 0

    @property
    def store_healthy(self) -> bool:
        """The last write succeeded and the log's disk has room: a fresh start on a full disk is not
        healthy, though nothing has failed yet. A PostgreSQL log is not on this host's disk (and its
        data directory need not exist): its health is the last write's."""
        if is_postgres(self.config.store.url):
            return self.eventlog.healthy
        return self.eventlog.healthy and has_room(self.config.server.data_dir)

    @property
    def db_path(self) -> Path:
        return db_path(self.config.server.data_dir)

    @property
    def host(self) -> str:
        """Which host answers (`/stats` `host`): `cluster.host_name`, else the machine's name and the port."""
        return self.config.cluster.host_name or f"{socket.gethostname()}:{self.config.server.port}"

    @property
    def is_learner(self) -> bool:
        """Whether this process learns and publishes the policy (`/stats` `learner`)."""
        return self.kind == "single"

    def auth_summary(self) -> str:
        a = self.config.auth
        if not self.auth_enabled:
            return f"off: no API keys are required (host {self.config.server.host} is loopback, no keys set)"
        return f"on: {len(a.keys)} API key(s); /reward requires reward_token"

    # -- the two verbs ----------------------------------------------------------------------

    async def route(
        self, query: str, metadata: dict[str, Any], max_output_tokens: int | None, **options: Any
    ) -> Decision:
        """Decide, then answer once the decision is committed: an event id handed out always exists
        (how durably is `server.durability`'s; the retired `decision_ack = "enqueue"` waits too).

        `options` go to Router.route (`escalate_from`, `input_tokens`, `restrict_to`).
        """
        self.eventlog.admit()
        started = time.perf_counter()
        if len(query) > pii.STEP_CHARS and self.config.rules.pii_detection and tagged_sensitive(metadata) is None:
            options["pii_kinds"] = await _scan_for_pii(query, self._long_scans)
        try:
            decision = self.router.route(
                query, metadata, now=self.clock(), max_output_tokens=max_output_tokens, **options
            )
        except NoModelAllowed as exc:
            self.metrics.refused(exc.rule, exc.excluded)
            raise
        try:
            await self.eventlog.decision_committed(decision.event_id)
        except StoreError:
            self.router.forget(decision)  # never acknowledged: it must not collect feedback
            raise
        log.info(
            "decision",
            event_id=decision.event_id,
            model=decision.model,
            probability=round(decision.probability, 4),
            explored=decision.explored,
            reason=decision.reason,
        )
        self.metrics.route_seconds.observe(time.perf_counter() - started)
        return decision

    def reward_token(self, decision: Decision) -> str:
        """The token /route hands out with a decision; /reward checks it (see auth.reward_token)."""
        return auth.reward_token(self.secret, decision.event_id, decision.tenant)

    async def reward(self, part: FeedbackPart, reward_token: str | None = None) -> dict[str, Any]:
        """Store one feedback part durably, then fold it in.

        Raises UnknownEvent for unknown ids, RewardRefused for a missing or wrong reward token (the
        token is required when auth is on, checked whenever given) or too many parts for one event.
        """
        self.eventlog.admit()
        known = await self._known(part.event_id)
        if reward_token is None and self.auth_enabled:
            raise RewardRefused(401, "reward_token_required", "reward_token is required: send the one /route returned")
        if reward_token is not None and not auth.verify_reward_token(
            self.secret, part.event_id, known.tenant, reward_token
        ):
            raise RewardRefused(403, "invalid_reward_token", "reward_token does not match this event")
        limit = self.config.reward.max_parts_per_event
        too_many = RewardRefused(409, "too_many_parts", f"this event already has {limit} feedback parts")
        if known.parts >= limit:  # the cheap check; the commit enforces the limit under concurrency
            raise too_many
        try:
            await self.eventlog.feedback(part)
        except PartsLimitReached:
            raise too_many from None
        receipt = self._accept(part, known)
        self.metrics.feedback(part.source, late=receipt.status == "late")
        learned = receipt.learned
        log.info(
            "reward",
            event_id=part.event_id,
            status=receipt.status,
            source=part.source,
            reward=learned.reward if learned is not None else None,
        )
        answer: dict[str, Any] = {"event_id": part.event_id, "status": receipt.status, "stored": True}
        if receipt.quality_applied is not None:
            answer["quality_rule"] = self.config.reward.quality_rule
            answer["quality_applied"] = receipt.quality_applied
        if learned is not None:
            answer["reward"] = learned.reward
        return answer

    # -- background -------------------------------------------------------------------------

    async def _every(self, interval: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:  # a failed tick is retried at the next one
                log.error("background_task_failed", task=getattr(fn, "__name__", "?"), error=str(exc))

    def stats(self) -> dict[str, Any]:
        out = self.router.stats(self.clock())
        out["role"] = self.kind
        out["host"] = self.host
        out["learner"] = self.is_learner
        out["pid"] = os.getpid()
        out["policy_learned_seq"] = self.router.learned_seq
        out["write_queue"] = self.eventlog.pending()
        out["recent_events"] = self.recent_events
        out["auth"] = "on" if self.auth_enabled else "off"
        out["store_healthy"] = self.store_healthy
        out["cost_weight"] = self.config.reward.cost_weight
        out["latency_weight"] = self.config.reward.latency_weight
        out["exploration_paused"] = self.router.exploration_paused
        out["shadow_baseline"] = self.router.shadow_baseline
        out["uptime_s"] = round(self.clock() - self.started_at, 3)
        return out
