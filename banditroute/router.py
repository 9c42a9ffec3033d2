"""Router: featurize, apply the rules, let the bandit choose, join feedback, learn. No I/O.

The service and the simulators drive this same object, so what a simulator measures is what
production does. Time is passed in (`now`); logging goes to an injected sink.
"""

from __future__ import annotations

import functools
import hashlib
import os
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from banditroute import features, guardrails, reward
from banditroute.catalog import Catalog
from banditroute.config import Config
from banditroute.joiner import COMPLETE, NOT_PENDING, Joiner, PartResult, required_parts
from banditroute.policy import Policy
from banditroute.types import Decision, FeedbackPart, LearnedRow, ModelSpec, Outcome


class LogSink(Protocol):
    def decision(self, decision: Decision) -> None: ...
    def learned(self, row: LearnedRow) -> None: ...


class MemorySink:
    """Keeps everything in lists: for simulators, OPE on simulated logs, and tests."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.learned_rows: list[LearnedRow] = []

    def decision(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def learned(self, row: LearnedRow) -> None:
        self.learned_rows.append(row)


@dataclass(slots=True)
class FeedbackResult:
    status: str  # joiner status: pending, complete, not_pending
    quality_applied: bool | None
    learned: LearnedRow | None


def new_event_id() -> str:
    """128 random bits, hex: unguessable, so only the caller that got it can refer to it."""
    return os.urandom(16).hex()


def uniform_from(event_id: str) -> float:
    """The sampling draw in [0, 1) for an event, so a decision can be reproduced from its id."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


def sample(pmf: list[float], u: float) -> int:
    total = 0.0
    for i, p in enumerate(pmf):
        total += p
        if u < total:
            return i
    return max(range(len(pmf)), key=pmf.__getitem__)  # rounding left u above the sum


class Router:
    def __init__(self, config: Config, *, policy: Policy | None = None, sink: LogSink | None = None,
                 learned_seq: int = 0, joins: bool = True):
        self.config = config
        # False in a serving process of the multi-process mode: the learner joins and learns from the log.
        self.joins = joins
        self.catalog = Catalog(config.models)
        self.policy = policy if policy is not None else Policy(config.policy, config.models)
        self.sink = sink
        self.learned_seq = learned_seq
        self._known: dict[str, ModelSpec] = {m.name: m for m in config.models}
        self.joiner = Joiner(
            required_parts(config.reward.cost_weight, config.reward.latency_weight),
            config.reward.quality_rule,
            config.server.max_pending,
        )
        self._span = reward.reward_span(config.models, config.reward)
        # One tuple per distinct allowed set, shared by every decision over it (memory, see types.Decision).
        self._allowed_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.selections: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    # -- deciding ---------------------------------------------------------------------------

    def route(self, query: str, metadata: Mapping[str, Any] | None = None, *, now: float,
              event_id: str | None = None, max_output_tokens: int | None = None) -> Decision:
        """Choose a model for one request; raises guardrails.NoModelAllowed when none may serve it."""
        meta = metadata or {}
        event_id = event_id or new_event_id()
        input_tokens = features.estimate_tokens(query)
        verdict = guardrails.allowed(self.catalog, meta, input_tokens, max_output_tokens)
        feats = features.featurize(query, meta, self.config.features)
        models = self._allowed_sets.setdefault(verdict.allowed, verdict.allowed)
        pmf = self.policy.predict(feats, models)
        chosen = sample(pmf, uniform_from(event_id))
        best = max(range(len(pmf)), key=pmf.__getitem__)
        explored = chosen != best
        decision = Decision(
            event_id=event_id, ts=now, features=feats, models=models, chosen=chosen,
            pmf=array("d", pmf), explored=explored, reason=_reason(self.config.policy.exploration, pmf[chosen],
                                                                   explored, verdict),
            input_tokens=input_tokens, tenant=_tenant(meta),
        )
        self.selections[decision.model] += 1
        self.counts["decisions"] += 1
        if self.sink is not None:
            self.sink.decision(decision)
        if self.joins:
            for released in self.joiner.add(decision, now + self.config.reward.reward_wait_s):
                self._finish(*released, now)
        return decision

    # -- learning ---------------------------------------------------------------------------

    def feedback(self, part: FeedbackPart, now: float) -> FeedbackResult:
        """Fold one feedback part in; learns when the event's join completes."""
        self.counts["feedback_parts"] += 1
        result: PartResult = self.joiner.add_part(part)
        learned = None
        if result.status == COMPLETE and result.joined is not None:
            learned = self._finish(*result.joined, now)
        elif result.status == NOT_PENDING:
            self.counts["late_parts"] += 1
        return FeedbackResult(result.status, result.quality_applied, learned)

    def expire(self, now: float) -> list[LearnedRow]:
        """Finish every decision whose wait window has passed, with defaults for what is missing."""
        out = []
        for decision, outcome in self.joiner.expire(now):
            self.counts["expired"] += 1
            out.append(self._finish(decision, outcome, now))
        return out

    def _finish(self, decision: Decision, outcome: Outcome, now: float) -> LearnedRow:
        spec = self._known[decision.model]
        r = reward.resolve(outcome, spec, decision.input_tokens, self.config.reward)
        self.learned_seq += 1
        weights = self.config.reward.weights
        if r is None:
            self.counts["skipped"] += 1
            row = LearnedRow(self.learned_seq, decision.event_id, now, None, None, outcome.cost_usd,
                             outcome.latency_ms, None, "quality", weights.cost_weight, weights.latency_weight)
        else:
            vw_cost = reward.to_vw_cost(r.value, self._span)
            self.policy.learn(decision.features, decision.models, decision.chosen, decision.probability, vw_cost)
            self.counts["learned"] += 1
            if "quality" in r.defaulted:
                self.counts["defaults_applied"] += 1
            row = LearnedRow(self.learned_seq, decision.event_id, now, r.value, r.quality, r.cost_usd,
                             r.latency_ms, vw_cost, ",".join(r.defaulted), weights.cost_weight,
                             weights.latency_weight)
        if self.sink is not None:
            self.sink.learned(row)
        return row

    # -- restart ----------------------------------------------------------------------------

    def replay(self, rows: Iterable[tuple[LearnedRow, Decision]]) -> int:
        """Re-learn finished joins after a checkpoint, exactly as they were learned the first time."""
        n = 0
        for row, decision in rows:
            if row.vw_cost is not None:
                self.policy.learn(decision.features, decision.models, decision.chosen, decision.probability,
                                  row.vw_cost)
                n += 1
            self.learned_seq = max(self.learned_seq, row.seq)
        return n

    def restore_pending(self, decisions: Iterable[Decision], parts: Iterable[FeedbackPart]) -> None:
        """Wait again for decisions that were pending at the last stop, with the parts already stored.

        Nothing is learned here; `expire(now)` afterwards finishes those whose window has passed.
        """
        for d in decisions:
            self.joiner.add(d, d.ts + self.config.reward.reward_wait_s)
        for p in parts:
            result = self.joiner.add_part(p)
            if result.status == COMPLETE and result.joined is not None:
                self._finish(*result.joined, p.ts)

    # -- state ------------------------------------------------------------------------------

    def reload_catalog(self, specs: Iterable[ModelSpec]) -> None:
        """Take a new catalog at once, keeping what the policy learned (see issue 5 for the full lifecycle)."""
        specs = tuple(specs)
        self.catalog = Catalog(specs)
        self._known.update({m.name: m for m in specs})
        self.policy.set_catalog(specs)
        self._span = reward.reward_span(specs, self.config.reward)

    def forget(self, decision: Decision) -> None:
        """Undo a decision that could not be logged: no feedback will be joined to it."""
        self.joiner.discard(decision.event_id)
        self.selections[decision.model] -= 1
        self.counts["decisions"] -= 1

    def is_pending(self, event_id: str) -> bool:
        return event_id in self.joiner

    def stats(self) -> dict[str, Any]:
        total = sum(self.selections.values())
        return {
            "decisions": self.counts["decisions"],
            "feedback_parts": self.counts["feedback_parts"],
            "rewards_learned": self.counts["learned"],
            "defaults_applied": self.counts["defaults_applied"],
            "skipped": self.counts["skipped"],
            "expired": self.counts["expired"],
            "late_parts": self.counts["late_parts"],
            "pending_joins": len(self.joiner),
            "selection_share": {m: n / total for m, n in sorted(self.selections.items())} if total else {},
        }


def _reason(exploration: str, p: float, explored: bool, verdict: guardrails.Verdict) -> str:
    excluded = tuple(Counter(verdict.excluded.values()).items()) if verdict.excluded else ()
    return _reason_text(exploration, f"{p:.3f}", explored, len(verdict.allowed), excluded)


@functools.lru_cache(maxsize=4096)
def _reason_text(exploration: str, p: str, explored: bool, n_allowed: int, excluded: tuple[tuple[str, int], ...]) -> str:
    """Few distinct texts: cached, so pending decisions share them instead of holding a copy each."""
    how = "explore" if explored else "exploit"
    text = f"{how} via {exploration} (p={p}) among {n_allowed} allowed"
    if excluded:
        text += "; excluded " + ", ".join(f"{n} by {rule}" for rule, n in excluded)
    return text


def _tenant(meta: Mapping[str, Any]) -> str | None:
    tenant = meta.get("tenant")
    return str(tenant) if tenant is not None else None
