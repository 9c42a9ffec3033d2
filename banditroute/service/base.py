"""The running router: Router + Store + EventLog + background work, without HTTP.

Start-up recovery: load the newest checkpoint whose checksum holds and whose VW arguments match
the configuration, replay every join learned after it, then wait again for the decisions that
were pending (with the feedback parts already stored). A kill -9 therefore loses no acknowledged
feedback and no learning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from banditroute import auth
from banditroute.config import Config, ConfigError, load_config
from banditroute.joiner import COMPLETE, NOT_PENDING
from banditroute.policy import Policy, PolicyError, vw_args
from banditroute.router import Router
from banditroute.rules import NoModelAllowed
from banditroute.snapshot import PolicyFile
from banditroute.store.datadir import DB_NAME, SECRET_NAME, load_or_create_secret
from banditroute.store.sqlite import Checkpoint, Store, StoreError
from banditroute.store.writer import EventLog
from banditroute.telemetry.metrics import Metrics
from banditroute.telemetry.shadow import ShadowTracker
from banditroute.telemetry.timeseries import TimeSeries
from banditroute.types import ConfigChange, Decision, FeedbackPart, LearnedRow

log = structlog.get_logger("banditroute")

_RECENT_MAX = 100_000
_TENANT_UNKNOWN = object()  # in `_recent`: finished, tenant not at hand (read the decision if needed)
_CHANGES_SHOWN = 50  # operator changes listed on the dashboard

WEIGHTS, EXPLORATION, SHADOW, POLICY_LOADED, RELOAD = "weights", "exploration", "shadow", "policy_loaded", "reload"


def _log_failure(fut: asyncio.Future[None]) -> None:
    """For a write nobody awaits: its failure is logged (the store's health shows it too)."""
    if not fut.cancelled() and fut.exception() is not None:
        log.error("config_change_not_stored", error=str(fut.exception()))


SINGLE = "single"  # one process decides, joins and learns
SERVING = "serving"  # a serving process of the multi-process mode (see cluster.py): decides and logs only


class UnknownEvent(LookupError):
    pass


def load_policy(store: Store, config: Config) -> tuple[Policy | None, int]:
    """The newest good checkpoint's policy and the learned seq it includes; (None, 0) to start afresh.

    A checkpoint with other VW arguments than the configuration's is not used: the log is relearned.
    """
    args = vw_args(config.policy)
    for ckpt, checksum_ok in store.checkpoints():
        if not checksum_ok:
            log.error("checkpoint_refused", reason="checksum mismatch", learned_seq=ckpt.learned_seq)
            continue
        if ckpt.vw_args != args:
            log.warning(
                "checkpoint_not_used",
                reason="policy arguments changed; relearning from the log",
                old=ckpt.vw_args,
                new=args,
            )
            return None, 0
        try:
            return Policy(config.policy, config.models, model_data=ckpt.model), ckpt.learned_seq
        except PolicyError as exc:
            log.error(
                "checkpoint_refused",
                reason=str(exc),
                learned_seq=ckpt.learned_seq,
                action="trying the previous checkpoint",
            )
    return None, 0


def apply_change(router: Router, change: ConfigChange) -> None:
    """One logged operator change (weights, exploration, shadow baseline) applied to a router."""
    p = change.payload
    if change.kind == WEIGHTS:
        router.set_weights(float(p["cost_weight"]), float(p["latency_weight"]))  # type: ignore[arg-type]
    elif change.kind == EXPLORATION:
        router.exploration_paused = bool(p["paused"])
    elif change.kind == SHADOW:
        baseline = p["baseline"]
        router.shadow_baseline = baseline if baseline in router.catalog else None


def restore_live_state(router: Router, store: Store, now: float) -> None:
    """The online state the rules read (rewards per model, spend, latencies), from the log."""
    router.restore_rewards(store.rewards_per_model())
    for tenant, usd in store.spend_since(router.spend.period_start(now)).items():
        router.spend.add(tenant, usd, now)
    for model, latency_ms in store.recent_latencies(router.config.rules.latency_window):
        router.latency.observe(model, latency_ms)


class IncompatiblePolicy(ValueError):
    """A policy file this service cannot serve (other VW arguments, or bytes VW refuses)."""


class ReloadError(ValueError):
    """The configuration file could not be reloaded; nothing was changed."""


class RewardRefused(Exception):
    """A feedback part that may not be applied: `status` and `code` say why (401/403/409)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Service:
    def __init__(
        self,
        config: Config,
        *,
        clock: Any = time.time,
        config_path: str | Path | None = None,
        environ: Any = os.environ,
        role: str = SINGLE,
    ):
        self.config = config
        self.config_path = config_path  # what a reload reads; None: the bundled default
        self.clock = clock
        self.environ = environ
        self.role = role
        self._snapshot_id = 0  # serving role: the checkpoint row the policy was loaded from
        self._followed_seq = 0  # serving role: the last learned row folded into the online state
        self._changes_seq = 0  # serving role: the last operator change applied
        # Serving role: reward lookups on their own connection and thread, so they run while the
        # writer thread waits for a commit's fsync (WAL readers do not wait for the writer).
        self._reader: Store | None = None
        self._reader_thread: ThreadPoolExecutor | None = None
        self.auth_enabled = auth.auth_enabled(config.auth, config.server.host)
        self.secret = b""
        self.store: Store | None = None
        self.eventlog: EventLog | None = None
        self.router: Router | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._checkpointed_seq = 0
        # Events finished recently, with their tenant: known without a database read. Bounded.
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self.started_at = clock()
        self.metrics = Metrics(m.name for m in config.models)
        self.timeseries = TimeSeries(
            config.dashboard.interval_s, config.dashboard.history, config.dashboard.recent_decisions
        )
        self.shadow = ShadowTracker()
        self.changes: deque[ConfigChange] = deque(maxlen=_CHANGES_SHOWN)

    @property
    def db_path(self) -> Path:
        return Path(self.config.server.data_dir) / DB_NAME

    async def start(self) -> None:
        self.secret = load_or_create_secret(self.db_path.parent / SECRET_NAME, self.environ)
        self.store = Store(self.db_path)
        server = self.config.server
        self.eventlog = EventLog(
            self.store,
            server.write_batch_max,
            server.max_write_queue,
            linger_s=server.write_linger_ms / 1000.0,
            decisions_awaited=server.decision_ack == "commit",
        )
        self.eventlog.start()
        if self.role == SERVING:
            await self._start_serving()
            return
        policy, seq = self._load_policy()
        router = Router(self.config, policy=policy, sink=self.eventlog, learned_seq=seq, observer=self)
        self._restore_changes(router, self.store.config_changes())
        self.config = router.config
        self._restore_shadow()
        counts = self.store.counts()
        router.counts.update(
            decisions=counts["decisions"], feedback_parts=counts["feedback_parts"], learned=counts["learned"]
        )
        router.selections.update(self.store.selection_counts())
        restore_live_state(router, self.store, self.clock())
        replayed = router.relearn(self.store.learned_after(seq))
        router.learned_seq = max(router.learned_seq, self.store.max_learned_seq())
        pending = self.store.unlearned_decisions()
        router.restore_pending(pending, self.store.feedback_for_unlearned())
        self.router = router
        self._checkpointed_seq = seq
        expired = router.expire(self.clock())
        for row in expired:
            self._remember(row.event_id, _TENANT_UNKNOWN)
        log.info(
            "started",
            db=str(self.db_path),
            auth=self.auth_summary(),
            checkpoint_seq=seq,
            replayed=replayed,
            pending_restored=len(pending),
            expired_at_start=len(expired),
            models=list(router.catalog.names),
            exploration=self.config.policy.exploration,
        )
        self.metrics.watch(
            pending=lambda: len(router.joiner),
            write_queue=self.eventlog.pending,
            in_cooldown=lambda: len(router.cooldowns.active(self.clock())),
        )
        self._publish_settings()
        self._tasks = [
            asyncio.get_running_loop().create_task(self._every(self.config.server.expire_interval_s, self.expire)),
            asyncio.get_running_loop().create_task(
                self._every(self.config.server.checkpoint_interval_s, self.checkpoint)
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.role == SINGLE:  # a serving process's policy is the learner's snapshot: nothing to save
            with contextlib.suppress(Exception):
                await self.checkpoint()
        if self.eventlog is not None:
            await self.eventlog.close()
        if self.store is not None:
            self.store.close()
        if self._reader_thread is not None and self._reader is not None:
            self._reader_thread.shutdown(wait=True)
            self._reader.close()

    def auth_summary(self) -> str:
        a = self.config.auth
        if not self.auth_enabled:
            return f"off: no API keys are required (host {self.config.server.host} is loopback, no keys set)"
        return f"on: {len(a.keys)} API key(s); /reward requires reward_token"

    def _load_policy(self) -> tuple[Policy | None, int]:
        assert self.store is not None
        return load_policy(self.store, self.config)

    # -- serving role: decide from the learner's snapshots, log, never join -----------------------

    async def _start_serving(self) -> None:
        assert self.eventlog is not None and self.store is not None
        self.router = Router(self.config, sink=self.eventlog, joins=False, observer=self)
        self._reader = Store(self.db_path)
        self._reader_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="banditroute-reader")
        restore_live_state(self.router, self.store, self.clock())
        self._followed_seq = self.store.max_learned_seq()
        self._follow_changes(self.store.config_changes_after(0))
        await self.reload_snapshot()
        log.info("started", role=self.role, db=str(self.db_path), policy_learned_seq=self.router.learned_seq)
        self._tasks = [
            asyncio.get_running_loop().create_task(
                self._every(self.config.cluster.reload_interval_s, self.follow_learner)
            )
        ]

    async def follow_learner(self) -> None:
        """The learner's newest snapshot, and the joins it finished since the last look (cold-start
        counts, latencies and spend for the rules)."""
        assert self.store is not None and self.eventlog is not None and self.router is not None
        await self.reload_snapshot()
        rows = await self.eventlog.call(lambda: list(self.store.learned_after(self._followed_seq)))
        for row, decision in rows:
            self.router.observe_learned(row, decision)
            self._followed_seq = row.seq
        self._follow_changes(await self.eventlog.call(self.store.config_changes_after, self._changes_seq))

    def _follow_changes(self, changes: list[tuple[int, ConfigChange]]) -> None:
        """Operator changes any process logged (the admin endpoints answer for one process): all follow."""
        assert self.router is not None
        for seq, change in changes:
            apply_change(self.router, change)
            self._changes_seq = seq
        self.config = self.router.config

    async def reload_snapshot(self) -> None:
        """Take the learner's newest snapshot when there is one this process has not loaded."""
        assert self.store is not None and self.eventlog is not None and self.router is not None
        newest = await self.eventlog.call(self.store.newest_checkpoint_seq)
        if newest == self._snapshot_id:
            return
        policy, seq = await self.eventlog.call(load_policy, self.store, self.config)
        self._snapshot_id = newest
        if policy is not None:
            self.router.policy = policy
            self.router.learned_seq = seq
            log.info("snapshot_loaded", policy_learned_seq=seq)

    # -- the two verbs ----------------------------------------------------------------------

    async def route(
        self, query: str, metadata: dict[str, Any], max_output_tokens: int | None, **options: Any
    ) -> Decision:
        """Decide, then answer once the decision is committed (`server.decision_ack = "commit"`): an
        event id handed out always exists. With "enqueue" the answer does not wait for the commit; a
        decision whose commit fails is forgotten (its feedback gets 404 unknown_event).

        `options` go to Router.route (`escalate_from`, `input_tokens`, `restrict_to`).
        """
        assert self.router is not None and self.eventlog is not None
        self.eventlog.admit()
        started = time.perf_counter()
        try:
            decision = self.router.route(
                query, metadata, now=self.clock(), max_output_tokens=max_output_tokens, **options
            )
        except NoModelAllowed as exc:
            self.metrics.refused(exc.rule, exc.excluded)
            raise
        if self.config.server.decision_ack == "commit":
            try:
                await self.eventlog.decision_committed(decision.event_id)
            except StoreError:
                self.router.forget(decision)  # never acknowledged: it must not collect feedback
                raise
        else:  # "enqueue": answered now, committed with the writer's next batch
            self.eventlog.on_decision_failed(decision.event_id, lambda: self.router.forget(decision))
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
        assert self.router is not None and self.eventlog is not None and self.store is not None
        self.eventlog.admit()
        if self.role == SERVING:
            return await self._reward_serving(part, reward_token)
        event_id = part.event_id
        pending = self.router.joiner.decision(event_id)
        tenant = pending.tenant if pending is not None else self._recent.get(event_id, _TENANT_UNKNOWN)
        if pending is None and (tenant is _TENANT_UNKNOWN or event_id not in self._recent):
            known = await self.eventlog.call(self.store.decision, event_id)
            if known is None:
                raise UnknownEvent(event_id)
            tenant = known.tenant
        self._authorize(event_id, tenant, reward_token)
        parts = self.router.joiner.parts(event_id)
        if parts is None:
            parts = await self.eventlog.call(self.store.feedback_count, event_id)
        self._check_parts(parts)
        await self.eventlog.feedback(part)
        result = self.router.feedback(part, self.clock())
        if result.status == COMPLETE:
            self._remember(event_id, tenant)
        status = {COMPLETE: "learned", NOT_PENDING: "late"}.get(result.status, "pending")
        self.metrics.feedback(part.source, late=status == "late")
        log.info(
            "reward",
            event_id=part.event_id,
            status=status,
            source=part.source,
            reward=result.learned.reward if result.learned else None,
        )
        answer: dict[str, Any] = {"event_id": part.event_id, "status": status, "stored": True}
        if part.quality is not None:
            answer["quality_rule"] = self.config.reward.quality_rule
            answer["quality_applied"] = bool(result.quality_applied) and status != "late"
        if result.learned is not None:
            answer["reward"] = result.learned.reward
        return answer

    def _authorize(self, event_id: str, tenant: Any, reward_token: str | None) -> None:
        if reward_token is None and self.auth_enabled:
            raise RewardRefused(401, "reward_token_required", "reward_token is required: send the one /route returned")
        if reward_token is not None and not auth.verify_reward_token(self.secret, event_id, tenant, reward_token):
            raise RewardRefused(403, "invalid_reward_token", "reward_token does not match this event")

    def _check_parts(self, parts: int) -> None:
        if parts >= self.config.reward.max_parts_per_event:
            raise RewardRefused(
                409, "too_many_parts", f"this event already has {self.config.reward.max_parts_per_event} feedback parts"
            )

    async def _reward_serving(self, part: FeedbackPart, reward_token: str | None) -> dict[str, Any]:
        """Store the part; the learner tails the log and joins it. `late` when the join had finished.

        The event may have been decided by another process, so it is read from the log.
        """
        assert self.eventlog is not None and self.router is not None and self._reader is not None
        known = await asyncio.get_running_loop().run_in_executor(
            self._reader_thread, self._reader.event_state, part.event_id
        )
        if known is None:
            raise UnknownEvent(part.event_id)
        self._authorize(part.event_id, known.tenant, reward_token)
        self._check_parts(known.parts)
        await self.eventlog.feedback(part)
        self.router.counts["feedback_parts"] += 1
        if part.error is not None and not known.learned:
            self.router.observe_failure(known.model, self.clock())  # cooldowns: the failures this process hears of
        status = "late" if known.learned else "pending"
        self.metrics.feedback(part.source, late=known.learned)
        log.info("reward", event_id=part.event_id, status=status, source=part.source)
        return {"event_id": part.event_id, "status": status, "stored": True}

    # -- model lifecycle ----------------------------------------------------------------------

    def reload(self) -> dict[str, Any]:
        """Re-read the configuration file and swap in its catalog and rules; the policy is kept.

        Raises ReloadError (and changes nothing) when the file cannot be read or is invalid. Other
        sections need a restart; the answer's `needs_restart` names those among [reward], [policy],
        [features], [proxy] and [judge] that differ from the running ones.
        """
        assert self.router is not None
        try:
            fresh = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload_refused", error=str(exc))
            raise ReloadError(str(exc)) from None
        # Weights changed at run time stay in force (they are replayed at start too), so the file's
        # weights are not a difference that needs a restart.
        running = replace(
            self.config,
            reward=replace(
                self.config.reward, cost_weight=fresh.reward.cost_weight, latency_weight=fresh.reward.latency_weight
            ),
        )
        needs_restart = [
            name
            for name in ("reward", "policy", "features", "proxy", "judge", "admin", "dashboard")
            if getattr(fresh, name) != getattr(running, name)
        ]
        summary: dict[str, Any] = self.router.reload_catalog(fresh.models, fresh.rules)
        self.config = replace(self.config, models=fresh.models, rules=fresh.rules)
        for model in self.router.catalog.names:
            self.metrics.add_model(model)
        summary["needs_restart"] = needs_restart
        self._note(RELOAD, {k: summary[k] for k in ("added", "removed", "changed")}).add_done_callback(_log_failure)
        log.info("reloaded", **summary)
        return summary

    # -- background -------------------------------------------------------------------------

    def expire(self) -> None:
        assert self.router is not None
        for row in self.router.expire(self.clock()):
            self._remember(row.event_id, _TENANT_UNKNOWN)
            self.metrics.expired.inc()
            log.info("reward", event_id=row.event_id, status="expired", reward=row.reward, defaulted=row.defaulted)

    async def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Snapshot the policy into the log (skipped when nothing was learned since, unless forced)."""
        assert self.router is not None and self.eventlog is not None
        seq = self.router.learned_seq
        if seq == self._checkpointed_seq and not force:
            return None
        if not self.router.policy.is_finite():
            log.error(
                "checkpoint_skipped",
                reason="the live policy has NaN or infinite weights",
                learned_seq=seq,
                kept=self._checkpointed_seq,
            )
            return None
        model = self.router.policy.serialize()
        ckpt = Checkpoint(seq, self.router.policy.args, model, self.clock())
        await self.eventlog.checkpoint(ckpt)
        self._checkpointed_seq = seq
        log.info("checkpoint", learned_seq=seq, bytes=len(model))
        return ckpt

    async def _every(self, interval: float, fn: Any) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:  # a failed tick is retried at the next one
                log.error("background_task_failed", task=getattr(fn, "__name__", "?"), error=str(exc))

    def _remember(self, event_id: str, tenant: Any) -> None:
        self._recent[event_id] = tenant
        if len(self._recent) > _RECENT_MAX:
            self._recent.popitem(last=False)

    def stats(self) -> dict[str, Any]:
        assert self.router is not None and self.eventlog is not None
        out = self.router.stats(self.clock())
        out["role"] = self.role
        out["pid"] = os.getpid()
        out["policy_learned_seq"] = self.router.learned_seq
        out["write_queue"] = self.eventlog.pending()
        out["recent_events"] = len(self._recent)
        out["auth"] = "on" if self.auth_enabled else "off"
        out["store_healthy"] = self.eventlog.healthy
        out["cost_weight"] = self.config.reward.cost_weight
        out["latency_weight"] = self.config.reward.latency_weight
        out["exploration_paused"] = self.router.exploration_paused
        out["shadow_baseline"] = self.router.shadow_baseline
        out["uptime_s"] = round(self.clock() - self.started_at, 3)
        return out

    # -- observer (the router tells of every decision and finished join) --------------------

    def decided(self, decision: Decision, excluded: Mapping[str, str]) -> None:
        self.metrics.decided(decision, excluded)
        self.timeseries.decided(decision, excluded)
        if decision.shadow_chosen is not None:
            self.shadow.decided(decision.shadow_chosen == decision.chosen)

    def cooldown_started(self, model: str) -> None:
        self.metrics.cooldown_started(model)
        log.warning("cooldown_started", model=model)

    def learned(self, decision: Decision, row: LearnedRow) -> None:
        self.metrics.learned(decision, row)
        self.timeseries.learned(decision, row)
        if decision.shadow_pmf is not None and row.reward is not None:
            self.shadow.learned(row.reward, decision.shadow_pmf[decision.chosen])

    # -- operator controls (admin endpoints) -------------------------------------------------

    def settings(self) -> dict[str, Any]:
        assert self.router is not None
        return {
            "cost_weight": self.config.reward.cost_weight,
            "latency_weight": self.config.reward.latency_weight,
            "exploration_paused": self.router.exploration_paused,
            "shadow_baseline": self.router.shadow_baseline,
        }

    async def set_weights(self, cost_weight: float, latency_weight: float) -> dict[str, Any]:
        """Learn under new weights from now on; the change is logged (and replayed at the next start)."""
        assert self.router is not None
        old = self.settings()
        self.router.set_weights(cost_weight, latency_weight)
        self.config = self.router.config
        await self._record(
            WEIGHTS,
            {
                "cost_weight": cost_weight,
                "latency_weight": latency_weight,
                "previous": {"cost_weight": old["cost_weight"], "latency_weight": old["latency_weight"]},
            },
        )
        return self.settings()

    async def set_exploration(self, paused: bool) -> dict[str, Any]:
        assert self.router is not None
        self.router.exploration_paused = paused
        await self._record(EXPLORATION, {"paused": paused})
        return self.settings()

    async def set_shadow(self, baseline: str | None) -> dict[str, Any]:
        assert self.router is not None
        self.router.shadow_baseline = baseline
        await self._record(SHADOW, {"baseline": baseline})
        return self.settings()

    def shadow_summary(self) -> dict[str, Any]:
        assert self.router is not None
        return self.shadow.to_json(self.router.shadow_baseline)

    def policy_file(self) -> PolicyFile:
        """The live policy as a file (GET /admin/policy)."""
        assert self.router is not None
        return PolicyFile(
            self.router.policy.args,
            self.router.policy.serialize(),
            self.router.learned_seq,
            self.config.reward.cost_weight,
            self.config.reward.latency_weight,
            self.clock(),
            "service",
        )

    async def load_policy(self, pf: PolicyFile) -> dict[str, Any]:
        """Serve `pf` from now on, learning on top of it; checkpointed at once so a restart keeps it.

        Raises IncompatiblePolicy when its VW arguments differ from the configuration's or VW
        refuses its bytes; nothing changes then.
        """
        assert self.router is not None
        args = vw_args(self.config.policy)
        if pf.vw_args != args:
            raise IncompatiblePolicy(
                f"the policy was trained with other VW arguments {pf.vw_args}; this service uses {args}"
            )
        try:
            policy = Policy(self.config.policy, self.config.models, model_data=pf.model)
        except PolicyError as exc:
            raise IncompatiblePolicy(str(exc)) from None
        self.router.set_policy(policy)
        await self.checkpoint(force=True)
        await self._record(
            POLICY_LOADED,
            {
                "sha256": pf.sha256,
                "source": pf.source,
                "learned_seq": pf.learned_seq,
                "cost_weight": pf.cost_weight,
                "latency_weight": pf.latency_weight,
            },
        )
        return pf.describe()

    def dashboard_data(self) -> dict[str, Any]:
        assert self.router is not None
        out = self.timeseries.to_json()
        out.update(
            now=self.clock(),
            poll_interval_s=self.config.dashboard.poll_interval_s,
            models=list(self.router.catalog.names),
            settings=self.settings(),
            totals={k: v for k, v in self.router.stats().items() if k != "selection_share"},
            shadow=self.shadow_summary(),
            changes=[{"ts": c.ts, "kind": c.kind, "payload": c.payload} for c in reversed(self.changes)],
        )
        return out

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        """Log an operator's change and return once it is committed."""
        await self._note(kind, payload)

    def _note(self, kind: str, payload: dict[str, Any]) -> asyncio.Future[None]:
        """Log an operator's change; the returned future completes once it is committed."""
        assert self.eventlog is not None
        change = ConfigChange(self.clock(), kind, payload)
        self.changes.append(change)
        self._publish_settings()
        log.info("config_change", kind=kind, **payload)
        return self.eventlog.change(change)

    def _publish_settings(self) -> None:
        assert self.router is not None
        self.metrics.settings(
            self.config.reward.cost_weight,
            self.config.reward.latency_weight,
            self.router.exploration_paused,
            self.router.shadow_baseline is not None,
        )

    def _restore_changes(self, router: Router, changes: list[ConfigChange]) -> None:
        """Apply the operator's logged changes again, in order, so they survive a restart."""
        for change in changes:
            apply_change(router, change)
            self.changes.append(change)

    def _restore_shadow(self) -> None:
        assert self.store is not None
        self.shadow.decisions, self.shadow.matched = self.store.shadow_counts()
        for reward, probability in self.store.shadow_outcomes():
            self.shadow.learned(reward, probability)
