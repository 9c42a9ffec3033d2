"""Operator controls: what the admin endpoints change in a running service, each change logged.

Reward weights, paused exploration, the shadow baseline, a catalog reload, a policy loaded from a
file, a checkpoint on demand. Each change is appended to the log as a ConfigChange, so a restart and
the cluster's other processes apply it too (recovery.follow_changes).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from banditroute.budget import Target
from banditroute.config import Config, ConfigError, load_config
from banditroute.policy import Policy, PolicyError, vw_args
from banditroute.router import Router
from banditroute.service import recovery
from banditroute.service.recovery import EXPLORATION, POLICY_LOADED, RELOAD, SHADOW, WEIGHTS
from banditroute.snapshot import PolicyFile
from banditroute.store.sqlite import Checkpoint
from banditroute.store.writer import EventLog
from banditroute.telemetry.metrics import Metrics
from banditroute.telemetry.per_model import ModelOutcomes, model_table
from banditroute.telemetry.shadow import ShadowTracker
from banditroute.telemetry.timeseries import TimeSeries
from banditroute.types import ConfigChange

log = structlog.get_logger("banditroute")


def _log_failure(fut: asyncio.Future[None]) -> None:
    """For a write nobody awaits: its failure is logged (the store's health shows it too)."""
    if not fut.cancelled() and fut.exception() is not None:
        log.error("config_change_not_stored", error=str(fut.exception()))


class Keep:
    """`set_weights(..., target=KEEP)`: the target in force stays."""


KEEP = Keep()


class IncompatiblePolicy(ValueError):
    """A policy file this service cannot serve (other VW arguments, or bytes VW refuses)."""


class ReloadError(ValueError):
    """The configuration file could not be reloaded; nothing was changed."""


class OperatorControls:
    """Part of every Service (base.py), which builds the parts these read."""

    router: Router
    eventlog: EventLog
    clock: Callable[[], float]
    config_path: str | Path | None  # what a reload reads; None: the bundled default
    metrics: Metrics
    timeseries: TimeSeries
    shadow: ShadowTracker
    outcomes: ModelOutcomes
    changes: deque[ConfigChange]  # the newest, for the dashboard
    _checkpointed_seq: int  # the learned seq of the newest checkpoint this process wrote

    @property
    def config(self) -> Config:
        """The configuration in force: the router's, which operator changes and reloads update."""
        return self.router.config

    def reload(self) -> dict[str, Any]:
        """Re-read the configuration file and swap in its catalog and rules; the policy is kept.

        Raises ReloadError (and changes nothing) when the file cannot be read or is invalid. Other
        sections need a restart; the answer's `needs_restart` names those among [reward], [policy],
        [features], [proxy] and [judge] that differ from the running ones.
        """
        try:
            fresh = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload_refused", error=str(exc))
            raise ReloadError(str(exc)) from None
        # Weights and targets changed at run time stay in force (they are replayed at start too), so the
        # file's are not a difference that needs a restart.
        running = replace(
            self.config,
            reward=replace(
                self.config.reward,
                cost_weight=fresh.reward.cost_weight,
                latency_weight=fresh.reward.latency_weight,
                target_cost_per_1k=fresh.reward.target_cost_per_1k,
                target_quality=fresh.reward.target_quality,
            ),
        )
        needs_restart = [
            name
            for name in ("reward", "policy", "features", "proxy", "judge", "admin", "dashboard")
            if getattr(fresh, name) != getattr(running, name)
        ]
        summary: dict[str, Any] = self.router.reload_catalog(fresh.models, fresh.rules)
        for model in self.router.catalog.names:
            self.metrics.add_model(model)
        summary["needs_restart"] = needs_restart
        self._note(RELOAD, {k: summary[k] for k in ("added", "removed", "changed")}).add_done_callback(_log_failure)
        log.info("reloaded", **summary)
        return summary

    async def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Snapshot the policy into the log (skipped when nothing was learned since, unless forced)."""
        seq = self.router.learned_seq
        if seq == self._checkpointed_seq and not force:
            return None
        ckpt = recovery.checkpoint_of(self.router, self.clock())
        if ckpt is None:
            return None
        await self.eventlog.checkpoint(ckpt)
        self._checkpointed_seq = seq
        log.info("checkpoint", learned_seq=seq, bytes=len(ckpt.model))
        return ckpt

    def settings(self) -> dict[str, Any]:
        target = self.router.target
        return {
            "cost_weight": self.config.reward.cost_weight,
            "latency_weight": self.config.reward.latency_weight,
            "exploration_paused": self.router.exploration_paused,
            "shadow_baseline": self.router.shadow_baseline,
            "target_cost_per_1k": self.config.reward.target_cost_per_1k,
            "target_quality": self.config.reward.target_quality,
            "target": target.state() if target is not None else None,
        }

    async def set_weights(
        self, cost_weight: float, latency_weight: float, target: Target | None | Keep = KEEP
    ) -> dict[str, Any]:
        """Learn under new weights from now on, and hold a target (None: none) unless KEEP; the change is
        logged with the targets in force (and replayed at the next start)."""
        old = self.settings()
        self.router.set_weights(cost_weight, latency_weight)
        if not isinstance(target, Keep):
            self.router.set_target(target)
        reward = self.config.reward
        await self._record(
            WEIGHTS,
            {
                "cost_weight": cost_weight,
                "latency_weight": latency_weight,
                "target_cost_per_1k": reward.target_cost_per_1k,
                "target_quality": reward.target_quality,
                "previous": {
                    "cost_weight": old["cost_weight"],
                    "latency_weight": old["latency_weight"],
                    "target_cost_per_1k": old["target_cost_per_1k"],
                    "target_quality": old["target_quality"],
                },
            },
        )
        return self.settings()

    async def set_exploration(self, paused: bool) -> dict[str, Any]:
        self.router.exploration_paused = paused
        await self._record(EXPLORATION, {"paused": paused})
        return self.settings()

    async def set_shadow(self, baseline: str | None) -> dict[str, Any]:
        self.router.shadow_baseline = baseline
        await self._record(SHADOW, {"baseline": baseline})
        return self.settings()

    def shadow_summary(self) -> dict[str, Any]:
        return self.shadow.to_json(self.router.shadow_baseline)

    def policy_file(self) -> PolicyFile:
        """The live policy as a file (GET /admin/policy)."""
        return self.router.snapshot(self.clock())

    async def load_policy(self, pf: PolicyFile) -> dict[str, Any]:
        """Serve `pf` from now on, learning on top of it; checkpointed at once so a restart keeps it.

        Raises IncompatiblePolicy when its VW arguments differ from the configuration's or VW
        refuses its bytes; nothing changes then.
        """
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
        ckpt = await self.checkpoint(force=True)
        await self._record(
            POLICY_LOADED,
            {
                "sha256": pf.sha256,
                # the checkpoint row that holds it: a learner in another process adopts that one
                "checkpoint_sha256": hashlib.sha256(ckpt.model).hexdigest() if ckpt is not None else None,
                "source": pf.source,
                "learned_seq": pf.learned_seq,
                "cost_weight": pf.cost_weight,
                "latency_weight": pf.latency_weight,
            },
        )
        return pf.describe()

    def dashboard_data(self) -> dict[str, Any]:
        out = self.timeseries.to_json()
        router, now = self.router, self.clock()
        stats = router.stats(now)
        out["per_model"] = model_table(
            router.catalog.names,
            router.selections,
            stats["rewards_per_model"],
            stats["cooldowns"],
            stats["cold_start"],
            self.outcomes,
        )
        out.update(
            now=now,
            poll_interval_s=self.config.dashboard.poll_interval_s,
            models=list(self.router.catalog.names),
            settings=self.settings(),
            totals={k: v for k, v in stats.items() if k != "selection_share"},
            shadow=self.shadow_summary(),
            changes=[{"ts": c.ts, "kind": c.kind, "payload": c.payload} for c in reversed(self.changes)],
        )
        return out

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        """Log an operator's change and return once it is committed."""
        await self._note(kind, payload)

    def _note(self, kind: str, payload: dict[str, Any]) -> asyncio.Future[None]:
        """Log an operator's change; the returned future completes once it is committed."""
        change = ConfigChange(self.clock(), kind, payload)
        self.changes.append(change)
        self._publish_settings()
        log.info("config_change", kind=kind, **payload)
        return self.eventlog.change(change)

    def _publish_settings(self) -> None:
        self.metrics.settings(
            self.config.reward.cost_weight,
            self.config.reward.latency_weight,
            self.router.exploration_paused,
            self.router.shadow_baseline is not None,
        )
