"""A router and its log: recovery at start, the operator changes that follow, the checkpoints.

Every process that learns (the single-process service, the cluster's learner) starts the same way:
the newest checkpoint whose checksum holds and whose VW arguments match the configuration, the
operator's logged changes, every join learned after the checkpoint learned again, then the decisions
still pending waited for again with the feedback parts already stored. A kill -9 therefore loses no
acknowledged feedback and no learning. No asyncio here: the callers choose the thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from banditroute import budget, retention
from banditroute.config import Config, ConfigError
from banditroute.policy import Policy, PolicyError, vw_args
from banditroute.router import LogSink, Observer, Router
from banditroute.store.base import Checkpoint, LogStore
from banditroute.types import ConfigChange

log = structlog.get_logger("banditroute")

# Events one retention batch removes at most: one short transaction; the writes go between batches.
PRUNE_BATCH = 5000

# The kinds of logged operator changes (ConfigChange.kind).
WEIGHTS, EXPLORATION, SHADOW, POLICY_LOADED, RELOAD = "weights", "exploration", "shadow", "policy_loaded", "reload"


def load_policy(store: LogStore, config: Config) -> tuple[Policy | None, int]:
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
        if "target_cost_per_1k" in p:  # changes logged before targets existed name none
            cost, quality = p["target_cost_per_1k"], p.get("target_quality")
            try:
                router.set_target(
                    budget.target_of(
                        float(cost) if isinstance(cost, int | float) else None,
                        float(quality) if isinstance(quality, int | float) else None,
                    )
                )
            except (ConfigError, ValueError) as exc:  # e.g. the configuration now names a VW learner
                log.warning("target_not_applied", error=str(exc), target_cost_per_1k=cost, target_quality=quality)
    elif change.kind == EXPLORATION:
        router.exploration_paused = bool(p["paused"])
    elif change.kind == SHADOW:
        baseline = p["baseline"]
        router.shadow_baseline = baseline if isinstance(baseline, str) and baseline in router.catalog else None


def follow_changes(router: Router, changes: Iterable[tuple[int, ConfigChange]], after: int) -> int:
    """Apply logged changes (as `Store.config_changes_after(after)` reads them) in order; the last seq applied.

    The admin endpoints answer for one process; every other process (and a restart) follows the log.
    """
    for seq, change in changes:
        apply_change(router, change)
        after = seq
    return after


def restore_live_state(router: Router, store: LogStore, now: float) -> None:
    """The online state the rules read (rewards per model, spend, latencies), from the log."""
    router.restore_rewards(store.rewards_per_model())
    for tenant, usd in store.spend_since(router.spend.period_start(now)).items():
        router.spend.add(tenant, usd, now)
    for model, latency_ms in store.recent_latencies(router.config.rules.latency_window):
        router.latency.observe(model, latency_ms)


def restore_counts(router: Router, store: LogStore) -> None:
    """The counters /stats shows (decisions, parts, rewards learned, selections), from the log."""
    counts = store.counts()
    router.counts.update(
        decisions=counts["decisions"], feedback_parts=counts["feedback_parts"], learned=counts["learned"]
    )
    router.selections.update(store.selection_counts())


@dataclass(frozen=True, slots=True)
class Recovered:
    router: Router
    checkpoint_seq: int  # the learned seq the checkpoint included (0: none was usable)
    changes: tuple[ConfigChange, ...]  # the operator's changes, applied in order
    changes_seq: int  # the last change's seq: follow the log after it
    relearned: int  # joins learned again after the checkpoint
    pending: int  # decisions waited for again
    decision_seq: int  # the log's last decision and feedback part at start: tail after them
    feedback_seq: int


def recover(
    store: LogStore,
    config: Config,
    *,
    sink: LogSink,
    word_key: bytes,
    observer: Observer | None = None,
    before_pending: Callable[[Router], None] | None = None,
) -> Recovered:
    """A router rebuilt from the log: checkpoint, operator changes, relearning, pending decisions.

    `before_pending(router)` restores what else the caller keeps from the log (counters, the rules'
    online state) before the pending decisions are taken back: their joins may finish at once, and
    what they add must come on top of the log's totals, not be read back from it.
    """
    policy, seq = load_policy(store, config)
    router = Router(config, policy=policy, sink=sink, learned_seq=seq, observer=observer, word_key=word_key)
    changes = store.config_changes_after(0)
    changes_seq = follow_changes(router, changes, 0)
    if before_pending is not None:
        before_pending(router)
    relearned = router.relearn(store.learned_after(seq))
    # New learned rows continue after the log's newest, whatever relearning read.
    router.learned_seq = max(router.learned_seq, store.max_learned_seq())
    decisions, parts, decision_seq, feedback_seq = store.unlearned_state()
    router.restore_pending(decisions, parts)
    return Recovered(
        router,
        seq,
        tuple(change for _, change in changes),
        changes_seq,
        relearned,
        len(decisions),
        decision_seq,
        feedback_seq,
    )


def checkpoint_of(router: Router, now: float) -> Checkpoint | None:
    """The live policy as a checkpoint row; None (logged) when its weights are not all finite."""
    if not router.policy.is_finite():
        log.error(
            "checkpoint_skipped", reason="the live policy has NaN or infinite weights", learned_seq=router.learned_seq
        )
        return None
    snap = router.snapshot(now)
    return Checkpoint(snap.learned_seq, snap.vw_args, snap.model, snap.created)


def prune_horizon(router: Router, now: float) -> float | None:
    """Before when retention may remove events (`store.retention_days`); None: it keeps everything."""
    return retention.horizon(now, router.config.store.retention_days, router.spend.period_start(now))
