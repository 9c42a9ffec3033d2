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
import secrets
import stat
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from banditroute import auth
from banditroute.config import Config, ConfigError, load_config
from banditroute.eventlog import EventLog
from banditroute.joiner import COMPLETE, NOT_PENDING
from banditroute.policy import Policy, PolicyError, vw_args
from banditroute.router import Router
from banditroute.store import Checkpoint, Store, StoreError
from banditroute.types import Decision, FeedbackPart

log = structlog.get_logger("banditroute")

DB_NAME = "banditroute.db"
SECRET_NAME = "reward_secret"
SECRET_ENV = "BANDITROUTE_SECRET"
_SECRET_BYTES = 32
_SECRET_MIN_CHARS = 16
_RECENT_MAX = 100_000
_TENANT_UNKNOWN = object()  # in `_recent`: finished, tenant not at hand (read the decision if needed)


class UnknownEvent(LookupError):
    pass


class ReloadError(ValueError):
    """The configuration file could not be reloaded; nothing was changed."""


class RewardRefused(Exception):
    """A feedback part that may not be applied: `status` and `code` say why (401/403/409)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def load_or_create_secret(path: Path, environ: Any = os.environ) -> bytes:
    """The reward-token secret: env BANDITROUTE_SECRET, else a random one kept in `path` (0600).

    Kept on disk so tokens handed out before a restart stay valid after it.
    """
    from_env = environ.get(SECRET_ENV)
    if from_env is not None:
        if len(from_env) < _SECRET_MIN_CHARS:
            raise ConfigError(f"{SECRET_ENV} must be at least {_SECRET_MIN_CHARS} characters")
        return from_env.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("secret_file_permissions", path=str(path), mode=oct(mode), expected="0o600")
        value = bytes.fromhex(path.read_text().strip())
        if len(value) < _SECRET_BYTES:
            raise ConfigError(f"{path} does not hold a {_SECRET_BYTES}-byte hex secret")
        return value
    value = secrets.token_bytes(_SECRET_BYTES)
    with os.fdopen(fd, "w") as f:
        f.write(value.hex())
        f.flush()
        os.fsync(f.fileno())
    return value


class Service:
    def __init__(self, config: Config, *, clock: Any = time.time, config_path: str | Path | None = None,
                 environ: Any = os.environ):
        self.config = config
        self.config_path = config_path  # what a reload reads; None: the bundled default
        self.clock = clock
        self.environ = environ
        self.auth_enabled = config.auth.enabled(config.server.host)
        self.secret = b""
        self.store: Store | None = None
        self.eventlog: EventLog | None = None
        self.router: Router | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._checkpointed_seq = 0
        # Events finished recently, with their tenant: known without a database read. Bounded.
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self.started_at = clock()

    @property
    def db_path(self) -> Path:
        return Path(self.config.server.data_dir) / DB_NAME

    async def start(self) -> None:
        self.secret = load_or_create_secret(self.db_path.parent / SECRET_NAME, self.environ)
        self.store = Store(self.db_path)
        self.eventlog = EventLog(self.store, self.config.server.write_batch_max, self.config.server.max_write_queue)
        self.eventlog.start()
        policy, seq = self._load_policy()
        router = Router(self.config, policy=policy, sink=self.eventlog, learned_seq=seq)
        counts = self.store.counts()
        router.counts.update(decisions=counts["decisions"], feedback_parts=counts["feedback_parts"],
                             learned=counts["learned"])
        router.selections.update(self.store.selection_counts())
        router.rewards.update(self.store.rewards_per_model())
        now = self.clock()
        for tenant, usd in self.store.spend_since(router.spend.period_start(now)).items():
            router.spend.add(tenant, usd, now)
        for model, latency_ms in self.store.recent_latencies(self.config.rules.latency_window):
            router.latency.observe(model, latency_ms)
        replayed = router.replay(self.store.learned_after(seq))
        router.learned_seq = max(router.learned_seq, self.store.max_learned_seq())
        pending = self.store.unlearned_decisions()
        router.restore_pending(pending, self.store.feedback_for_unlearned())
        self.router = router
        self._checkpointed_seq = seq
        expired = router.expire(self.clock())
        for row in expired:
            self._remember(row.event_id, _TENANT_UNKNOWN)
        log.info("started", db=str(self.db_path), auth=self.auth_summary(), checkpoint_seq=seq, replayed=replayed,
                 pending_restored=len(pending), expired_at_start=len(expired),
                 models=list(router.catalog.names), exploration=self.config.policy.exploration)
        self._tasks = [
            asyncio.get_running_loop().create_task(self._every(self.config.server.expire_interval_s, self.expire)),
            asyncio.get_running_loop().create_task(
                self._every(self.config.server.checkpoint_interval_s, self.checkpoint)),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.checkpoint()
        if self.eventlog is not None:
            await self.eventlog.close()
        if self.store is not None:
            self.store.close()

    def auth_summary(self) -> str:
        a = self.config.auth
        if not self.auth_enabled:
            return f"off: no API keys are required (host {self.config.server.host} is loopback, no keys set)"
        return f"on: {len(a.keys)} API key(s); /reward requires reward_token"

    def _load_policy(self) -> tuple[Policy | None, int]:
        assert self.store is not None
        args = vw_args(self.config.policy)
        for ckpt, checksum_ok in self.store.checkpoints():
            if not checksum_ok:
                log.error("checkpoint_refused", reason="checksum mismatch", learned_seq=ckpt.learned_seq)
                continue
            if ckpt.vw_args != args:
                log.warning("checkpoint_not_used", reason="policy arguments changed; relearning from the log",
                            old=ckpt.vw_args, new=args)
                return None, 0
            try:
                return Policy(self.config.policy, self.config.models, model_data=ckpt.model), ckpt.learned_seq
            except PolicyError as exc:
                log.error("checkpoint_refused", reason=str(exc), learned_seq=ckpt.learned_seq,
                          action="trying the previous checkpoint")
        return None, 0

    # -- the two verbs ----------------------------------------------------------------------

    async def route(self, query: str, metadata: dict[str, Any], max_output_tokens: int | None,
                    **options: Any) -> Decision:
        """Decide, then answer once the decision is committed: an event id handed out always exists.

        `options` go to Router.route (`escalate_from`, `input_tokens`, `restrict_to`).
        """
        assert self.router is not None and self.eventlog is not None
        self.eventlog.admit()
        decision = self.router.route(query, metadata, now=self.clock(), max_output_tokens=max_output_tokens,
                                     **options)
        try:
            await self.eventlog.decision_committed(decision.event_id)
        except StoreError:
            self.router.forget(decision)  # never acknowledged: it must not collect feedback
            raise
        log.info("decision", event_id=decision.event_id, model=decision.model,
                 probability=round(decision.probability, 4), explored=decision.explored, reason=decision.reason)
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
        event_id = part.event_id
        pending = self.router.joiner.decision(event_id)
        tenant = pending.tenant if pending is not None else self._recent.get(event_id, _TENANT_UNKNOWN)
        if pending is None and (tenant is _TENANT_UNKNOWN or event_id not in self._recent):
            known = await self.eventlog.call(self.store.decision, event_id)
            if known is None:
                raise UnknownEvent(event_id)
            tenant = known.tenant
        if reward_token is None and self.auth_enabled:
            raise RewardRefused(401, "reward_token_required", "reward_token is required: send the one /route returned")
        if reward_token is not None and not auth.verify_reward_token(self.secret, event_id, tenant, reward_token):
            raise RewardRefused(403, "invalid_reward_token", "reward_token does not match this event")
        parts = self.router.joiner.parts(event_id)
        if parts is None:
            parts = await self.eventlog.call(self.store.feedback_count, event_id)
        if parts >= self.config.reward.max_parts_per_event:
            raise RewardRefused(409, "too_many_parts",
                                f"this event already has {self.config.reward.max_parts_per_event} feedback parts")
        await self.eventlog.feedback(part)
        result = self.router.feedback(part, self.clock())
        if result.status == COMPLETE:
            self._remember(event_id, tenant)
        status = {COMPLETE: "learned", NOT_PENDING: "late"}.get(result.status, "pending")
        log.info("reward", event_id=part.event_id, status=status, source=part.source,
                 reward=result.learned.reward if result.learned else None)
        answer: dict[str, Any] = {"event_id": part.event_id, "status": status, "stored": True}
        if part.quality is not None:
            answer["quality_rule"] = self.config.reward.quality_rule
            answer["quality_applied"] = bool(result.quality_applied) and status != "late"
        if result.learned is not None:
            answer["reward"] = result.learned.reward
        return answer

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
        needs_restart = [name for name in ("reward", "policy", "features", "proxy", "judge")
                         if getattr(fresh, name) != getattr(self.config, name)]
        summary: dict[str, Any] = self.router.reload_catalog(fresh.models, fresh.rules)
        self.config = replace(self.config, models=fresh.models, rules=fresh.rules)
        summary["needs_restart"] = needs_restart
        log.info("reloaded", **summary)
        return summary

    # -- background -------------------------------------------------------------------------

    def expire(self) -> None:
        assert self.router is not None
        for row in self.router.expire(self.clock()):
            self._remember(row.event_id, _TENANT_UNKNOWN)
            log.info("reward", event_id=row.event_id, status="expired", reward=row.reward,
                     defaulted=row.defaulted)

    async def checkpoint(self) -> None:
        assert self.router is not None and self.eventlog is not None
        seq = self.router.learned_seq
        if seq == self._checkpointed_seq:
            return
        if not self.router.policy.is_finite():
            log.error("checkpoint_skipped", reason="the live policy has NaN or infinite weights",
                      learned_seq=seq, kept=self._checkpointed_seq)
            return
        model = self.router.policy.serialize()
        await self.eventlog.checkpoint(Checkpoint(seq, self.router.policy.args, model, self.clock()))
        self._checkpointed_seq = seq
        log.info("checkpoint", learned_seq=seq, bytes=len(model))

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
        out["write_queue"] = self.eventlog.pending()
        out["recent_events"] = len(self._recent)
        out["auth"] = "on" if self.auth_enabled else "off"
        out["store_healthy"] = self.eventlog.healthy
        out["cost_weight"] = self.config.reward.cost_weight
        out["latency_weight"] = self.config.reward.latency_weight
        out["uptime_s"] = round(self.clock() - self.started_at, 3)
        return out
