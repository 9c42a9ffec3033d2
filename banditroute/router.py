"""Router: featurize, apply the rules, let the bandit choose, join feedback, learn. No I/O.

The service and the simulators drive this same object, so what a simulator measures is what
production does. Time is passed in (`now`); logging goes to an injected sink.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from banditroute import decider, features, live, reward
from banditroute import rules as guardrails
from banditroute.catalog import Catalog
from banditroute.config import Config, RulesConfig
from banditroute.events import new_event_id, sample, uniform_from
from banditroute.joiner import Joiner, required_parts
from banditroute.learning import FeedbackResult, Learning
from banditroute.pending import pack_pending, unpack_pending
from banditroute.policy import Policy
from banditroute.snapshot import PolicyFile
from banditroute.types import Decision, LearnedRow, ModelSpec

__all__ = [
    "FeedbackResult",
    "Learning",
    "LogSink",
    "MemorySink",
    "Observer",
    "Router",
    "new_event_id",
    "sample",
    "uniform_from",
]

Restriction = tuple[str, "frozenset[str]"]


# Distinct model lists (allowed sets, fallback orders) shared between decisions, at most.
_SHARED_TUPLES_MAX = 65_536


class LogSink(Protocol):
    def decision(self, decision: Decision) -> None: ...
    def learned(self, row: LearnedRow) -> None: ...


class Observer(Protocol):
    """Told of every decision (with the models the rules excluded), finished join and cooldown started."""

    def decided(self, decision: Decision, excluded: Mapping[str, str]) -> None: ...
    def learned(self, decision: Decision, row: LearnedRow) -> None: ...
    def cooldown_started(self, model: str) -> None: ...


class MemorySink:
    """Keeps everything in lists: for simulators, OPE on simulated logs, and tests."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.learned_rows: list[LearnedRow] = []

    def decision(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def learned(self, row: LearnedRow) -> None:
        self.learned_rows.append(row)


class Router(Learning):
    def __init__(
        self,
        config: Config,
        *,
        policy: Policy | None = None,
        sink: LogSink | None = None,
        learned_seq: int = 0,
        observer: Observer | None = None,
        joins: bool = True,
        word_key: bytes = b"",
    ):
        """`word_key`: the key of the word tokens (`features.word_key` of the data directory's secret); the
        same in every process that decides or learns from one log. Empty: unkeyed, for simulations."""
        self.config = config
        self.word_tokens = features.WordTokens(word_key)
        self.observer = observer
        # False in a serving process of the multi-process mode: the learner joins and learns from the log.
        self.joins = joins
        # Operator switches (admin endpoints): exploit only, or serve a baseline and shadow it.
        self.exploration_paused = False
        self.shadow_baseline: str | None = None
        self.catalog = Catalog(config.models)
        self.policy = policy if policy is not None else Policy(config.policy, config.models)
        self.sink = sink
        self.learned_seq = learned_seq
        self._known: dict[str, ModelSpec] = {m.name: m for m in config.models}
        self.joiner = Joiner(
            required_parts(config.reward.cost_weight, config.reward.latency_weight),
            config.reward.quality_rule,
            config.server.max_pending,
            pack=pack_pending,
            unpack=unpack_pending,
        )
        self._span = reward.reward_span(config.models, config.reward)
        self._set_penalty_terms()
        self._tuples: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.selections: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        # Rewards learned per model: a model with fewer than `cold_start_rewards` is explored on purpose.
        self.rewards: Counter[str] = Counter()
        self._warm: set[str] = set()  # models with at least `cold_start_rewards` rewards
        self.last_now = 0.0  # the latest time seen, for stats() without a time
        r = config.rules
        self.rules = guardrails.Rules(self.catalog, r)
        self.latency = live.LatencyTracker(r.latency_window, r.latency_min_samples, self._latency_priors())
        self.cooldowns = live.Cooldowns(r.cooldown_failures, r.cooldown_window_s, r.cooldown_s)
        self.spend = live.Spend(r.budget_period_s, r.budgets)
        self.conversations = live.Conversations(r.sticky_ttl_s, r.sticky_max_conversations)
        seed = config.policy.seed
        self._draws = random.Random(seed) if seed is not None else None  # policy.seed: a replayable stream

    @property
    def baseline_model(self) -> str | None:
        """The team's default model the exploration budget is kept against: `policy.baseline_model`, or
        the best on the evals after a warm start (see `warmstart`); None: no budget."""
        return self.config.policy.baseline_model or self.policy.state.baseline

    def _latency_priors(self) -> dict[str, float]:
        out_tokens = self.config.reward.default_output_tokens
        return {m.name: reward.estimated_latency(m, out_tokens) for m in self.catalog.specs}

    # -- deciding ---------------------------------------------------------------------------

    def route(
        self,
        query: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        now: float,
        event_id: str | None = None,
        max_output_tokens: int | None = None,
        escalate_from: str | None = None,
        input_tokens: int | None = None,
        restrict_to: Restriction | None = None,
        pii_kinds: frozenset[str] | None = None,
    ) -> Decision:
        """Choose a model for one request.

        `escalate_from`: only models stronger (pricier) than this one. `input_tokens`: the whole
        prompt's size when the query is only part of it (a conversation). `restrict_to`: a caller's
        own rule, (name, models it keeps), applied before the configured rules. `pii_kinds`: what
        `pii.detect(query)` returns, when the caller has scanned the query already.

        Raises guardrails.NoModelAllowed when the rules leave none (and no default model may take
        it), guardrails.UnknownModel when `escalate_from` is not in the catalog.
        """
        meta = metadata or {}
        event_id = event_id or new_event_id()
        self._saw(now)
        rules = self.config.rules
        if input_tokens is None:
            input_tokens = features.estimate_tokens(query)
        request = guardrails.request_from(
            query, meta, input_tokens, max_output_tokens, escalate_from, rules.pii_detection, pii_kinds
        )
        state = guardrails.LiveState(
            self.cooldowns.active(now), self.spend.exhausted(request.tenant, now), self.latency.p95
        )
        # A sensitive request's words stay out of its features (live too, so the log relearns the same).
        with_words = not request.sensitive or self.config.features.log_sensitive_words
        feats = features.featurize(query, meta, self.config.features, self.word_tokens, with_words=with_words)
        conversation = guardrails.meta_text(meta.get("conversation_id")) if rules.sticky_conversations else None
        shadow_pmf: tuple[float, ...] | None = None
        shadow_chosen: int | None = None
        try:
            verdict = self.rules.evaluate(request, state, restrict_to)
        except guardrails.NoModelAllowed as exc:
            verdict = self._default_verdict(exc, request, restrict_to)
            fallbacks: tuple[str, ...] = ()
            models, pmf, chosen, explored = verdict.allowed, [1.0], 0, False
            how = f"default model (rule {exc.rule} left no model)"
        else:
            models = self._shared(verdict.allowed)
            pmf, cold, budgeted = self._pmf(feats, models, input_tokens)
            sticky = self.conversations.get(conversation, now) if conversation is not None else None
            if sticky is not None and sticky in models:
                # The conversation keeps its model: a deterministic choice, logged as such (p = 1).
                ranked = decider.ranked(models, pmf)
                models, pmf, chosen, explored = (sticky,), [1.0], 0, False
                fallbacks = tuple(m for m in ranked if m != sticky)
                how = "sticky conversation"
            else:
                chosen = sample(pmf, self._draws.random() if self._draws is not None else uniform_from(event_id))
                best = max(range(len(pmf)), key=pmf.__getitem__)
                explored = chosen != best
                exploration = self.config.policy.exploration
                how = ("explore" if explored else "exploit") + f" via {exploration}"
                if budgeted:
                    how += " within the exploration budget"
                if cold:
                    how += " with cold start for " + (",".join(cold) if len(cold) <= 3 else f"{len(cold)} models")
                ranked = decider.ranked(models, pmf)
                baseline = self.shadow_baseline
                if baseline is not None and baseline in models:
                    # The baseline is served deterministically; the bandit's own pick is only logged.
                    shadow_pmf, shadow_chosen = tuple(pmf), chosen
                    chosen, explored = models.index(baseline), False
                    pmf = decider.degenerate(len(models), chosen)
                    how = (
                        f"shadow: bandit would pick {models[shadow_chosen]} "
                        f"(p={shadow_pmf[shadow_chosen]:.3f}); served baseline {baseline}"
                    )
                elif self.exploration_paused:
                    # The pmf logged is the one actually sampled from: all mass on the argmax.
                    how = f"exploit only (exploration paused): argmax of {exploration} at {pmf[best]:.3f}"
                    chosen, explored = best, False
                    pmf = decider.degenerate(len(models), chosen)
                elif baseline is not None:
                    how = f"shadow baseline {baseline} not allowed: {how}"
                fallbacks = self._shared(tuple(m for m in ranked if m != models[chosen]))
        decision = Decision(
            event_id=event_id,
            ts=now,
            features=feats,
            models=models,
            chosen=chosen,
            pmf=tuple(pmf),
            explored=explored,
            reason=decider.reason(how, pmf[chosen], len(models), verdict),
            input_tokens=input_tokens,
            tenant=request.tenant,
            excluded=verdict.excluded,
            fallbacks=fallbacks,
            shadow_pmf=shadow_pmf,
            shadow_chosen=shadow_chosen,
        )
        if conversation is not None:
            self.conversations.put(conversation, decision.model, now)
        self.selections[decision.model] += 1
        self.counts["decisions"] += 1
        if self.sink is not None:
            self.sink.decision(decision)
        if self.observer is not None:
            self.observer.decided(decision, verdict.excluded)
        if self.joins:
            self.wait_for(decision)
        return decision

    def _default_verdict(
        self, exc: guardrails.NoModelAllowed, request: guardrails.RuleRequest, restrict_to: Restriction | None
    ) -> guardrails.Allowed:
        """The configured default model for a request the rules left without one.

        Never breaks the data policy, nor the caller's own restriction (e.g. the proxy's "has an upstream").
        """
        rules = self.config.rules
        default = rules.default_model
        usable = (
            rules.on_empty == "default"
            and default in self.catalog
            and (not request.sensitive or self.rules.sensitive_ok(default))
            and (restrict_to is None or default in restrict_to[1])
        )
        if not usable:
            raise exc
        excluded = {m: rule for m, rule in exc.excluded.items() if m != default}
        return guardrails.Allowed((default,), excluded, exc.rules)

    def _pmf(self, feats: str, models: tuple[str, ...], input_tokens: int) -> tuple[list[float], list[str], bool]:
        """The pmf to sample from, the models given the cold-start floor, whether the budget restricted it.

        The decomposed learner explores by its posterior width (decider.py) and needs no cold-start floor:
        a model with no evidence is wide, so it is tried while it can win.
        """
        if not self.policy.decomposed:
            return *self._cold_start(self.policy.predict(feats, models), models, input_tokens), False
        p, r = self.config.policy, self.config.reward
        choice = decider.decide(
            self.policy,
            models,
            feats,
            input_tokens,
            r.weights,
            r.default_output_tokens,
            p.thompson_draws,
            self.baseline_model,
            p.exploration_budget,
        )
        return choice.pmf, [], choice.budgeted

    def _cold_start(
        self, pmf: list[float], models: tuple[str, ...], input_tokens: int
    ) -> tuple[list[float], list[str]]:
        """Mix a minimum share into the pmf for models with too few rewards; the result is what is sampled.

        With k such models and share s (at most 1/k): p' = (1 - k*s) * p + s for them, (1 - k*s) * p for
        the others. The pmf still sums to 1, and each cold model gets at least s. A model priced out of
        this request (`reward.priced_out`: it cannot win at any quality) gets no floor.
        """
        rules = self.config.rules
        if rules.cold_start_share <= 0 or rules.cold_start_rewards <= 0:
            return pmf, []
        warm = self._warm
        cold = [m for m in models if m not in warm]
        if cold:
            hopeless = reward.priced_out((), input_tokens, self.config.reward, self._terms_of(models))
            cold = [m for m in cold if m not in hopeless]
        if not cold:
            return pmf, []
        share = min(rules.cold_start_share, 1.0 / len(cold))
        keep = 1.0 - share * len(cold)
        cold_set = set(cold)
        return [keep * p + (share if m in cold_set else 0.0) for m, p in zip(models, pmf)], cold

    def _terms_of(self, models: tuple[str, ...]) -> list[tuple[str, float, float]]:
        """`reward.penalty_terms` of these models, as `priced_out` takes them; cached per model list."""
        terms = self._terms_cache.get(models)
        if terms is None:
            terms = [(m, *self._penalty_terms[m]) for m in models]
            if len(self._terms_cache) < _SHARED_TUPLES_MAX:
                self._terms_cache[models] = terms
        return terms

    def _set_penalty_terms(self) -> None:
        self._penalty_terms = reward.penalty_terms(self._known.values(), self.config.reward)
        self._terms_cache: dict[tuple[str, ...], list[tuple[str, float, float]]] = {}

    def _shared(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """One tuple per distinct model list, shared by the decisions over it: a million decisions may
        wait for feedback (see types.Decision). Bounded: beyond the cap a list is simply not shared."""
        shared = self._tuples.get(names)
        if shared is None:
            if len(self._tuples) < _SHARED_TUPLES_MAX:
                self._tuples[names] = names
            return names
        return shared

    # -- run-time tuning --------------------------------------------------------------------

    def set_weights(self, cost_weight: float, latency_weight: float) -> None:
        """Learn under new reward weights from now on: the reward, its VW span and the join's needs.

        Raises ConfigError for invalid weights (nothing changes then). Decisions already pending
        are finished under the new weights, as every join is resolved at learning time.
        """
        self.config = self.config.with_overrides(reward={"cost_weight": cost_weight, "latency_weight": latency_weight})
        self.joiner.required = required_parts(cost_weight, latency_weight)
        self._span = reward.reward_span(self.config.models, self.config.reward)
        self._set_penalty_terms()

    def set_policy(self, policy: Policy) -> None:
        """Serve and keep learning with another policy (e.g. one trained offline on the log)."""
        policy.set_catalog(self.config.models)
        self.policy = policy

    # -- model lifecycle ----------------------------------------------------------------------

    def reload_catalog(self, specs: Iterable[ModelSpec], rules: RulesConfig | None = None) -> dict[str, list[str]]:
        """Swap in a new catalog (and rules) without losing the learned policy.

        A changed price takes effect at the next request; a removed model is no longer routed to
        (decisions already made for it still learn); a new model starts from what the policy
        learned for its catalog features and gets the cold-start share until it has rewards.
        """
        specs = tuple(specs)
        old = self.catalog
        rules = rules if rules is not None else self.config.rules
        self.config = replace(self.config, models=specs, rules=rules)
        self.catalog = Catalog(specs)
        self._known.update((m.name, m) for m in specs)
        self.policy.set_catalog(specs)
        self._span = reward.reward_span(specs, self.config.reward)
        self._set_penalty_terms()
        self._rewarm()
        self.rules = guardrails.Rules(self.catalog, rules)
        if (rules.latency_window, rules.latency_min_samples) != (self.latency.window, self.latency.min_samples):
            self.latency = live.LatencyTracker(rules.latency_window, rules.latency_min_samples, {})
        self.latency.set_priors(self._latency_priors())
        self.cooldowns.failures = rules.cooldown_failures
        self.cooldowns.window_s = rules.cooldown_window_s
        self.cooldowns.duration_s = rules.cooldown_s
        self.cooldowns.forget_except(self.catalog.names)
        self.spend.reconfigure(rules.budget_period_s, rules.budgets)
        self.conversations.ttl_s = rules.sticky_ttl_s
        self.conversations.max_size = rules.sticky_max_conversations
        self.counts["catalog_reloads"] += 1
        return {
            "added": [m.name for m in specs if m.name not in old],
            "removed": [n for n in old.names if n not in self.catalog],
            "changed": [m.name for m in specs if m.name in old and old[m.name] != m],
            "models": list(self.catalog.names),
        }

    # -- state ------------------------------------------------------------------------------

    def forget(self, decision: Decision) -> None:
        """Undo a decision that could not be logged: no feedback will be joined to it."""
        self.joiner.discard(decision.event_id)
        self.selections[decision.model] -= 1
        self.counts["decisions"] -= 1

    def is_pending(self, event_id: str) -> bool:
        return event_id in self.joiner

    def _saw(self, now: float) -> None:
        if self.last_now < now < math.inf:
            self.last_now = now

    def stats(self, now: float | None = None) -> dict[str, Any]:
        """Counters and the rules' online state as of `now` (default: the latest time seen)."""
        now = self.last_now if now is None else now
        total = sum(self.selections.values())
        n_cold = self.config.rules.cold_start_rewards
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
            "rewards_per_model": {m: self.rewards[m] for m in self.catalog.names},
            "cold_start": [m for m in self.catalog.names if self.rewards[m] < n_cold],
            "cooldowns": self.cooldowns.remaining(now),
            "cooldowns_started": self.counts["cooldowns_started"],
            "latency": self.latency.observed(),
            "budgets": self.spend.report(now),
            "sticky_conversations": len(self.conversations),
            "catalog_reloads": self.counts["catalog_reloads"],
        }

    def pending(self, event_id: str) -> tuple[str | None, int] | None:
        """(tenant, feedback parts so far) of a decision still waiting for feedback; None when it is not."""
        decision = self.joiner.decision(event_id)
        if decision is None:
            return None
        return decision.tenant, self.joiner.parts(event_id) or 0

    def snapshot(self, now: float, source: str = "service") -> PolicyFile:
        """The live policy as a policy file: its bytes, VW arguments, learned seq and the weights in force."""
        w = self.config.reward
        return PolicyFile(
            self.policy.args, self.policy.serialize(), self.learned_seq, w.cost_weight, w.latency_weight, now, source
        )
