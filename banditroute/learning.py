"""How the Router learns: joins finished (live, and identically when relearning the log), eval samples
(full information), and the online state the rules read (failures, latency, spend, rewards per model).

A mixin of `Router` (router.py), which owns the attributes used here; split out so each module holds one
concept: router.py decides, this module learns. No I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from banditroute import features, reward, trainer
from banditroute.joiner import COMPLETE, NOT_PENDING, PartResult
from banditroute.types import Decision, EvalExample, FeedbackPart, LearnedRow, ModelSpec, Outcome, WarmStart

if TYPE_CHECKING:
    from banditroute import live
    from banditroute.catalog import Catalog
    from banditroute.config import Config
    from banditroute.joiner import Joiner
    from banditroute.policy import Policy
    from banditroute.router import LogSink, Observer


@dataclass(slots=True)
class FeedbackResult:
    status: str  # joiner status: pending, complete, not_pending
    quality_applied: bool | None
    learned: LearnedRow | None


class Learning:
    """Router methods that learn (see the module docstring)."""

    # What the Router owns and these methods use (set in Router.__init__).
    config: Config
    policy: Policy
    catalog: Catalog
    joiner: Joiner
    sink: LogSink | None
    observer: Observer | None
    learned_seq: int
    counts: Counter[str]
    rewards: Counter[str]
    latency: live.LatencyTracker
    cooldowns: live.Cooldowns
    spend: live.Spend
    _known: dict[str, ModelSpec]
    _span: float
    word_tokens: features.WordTokens

    if TYPE_CHECKING:

        def _saw(self, now: float) -> None: ...

    def _count_reward(self, model: str) -> None:
        self.rewards[model] += 1
        if self.rewards[model] >= self.config.rules.cold_start_rewards:
            self._warm.add(model)

    def restore_rewards(self, per_model: Mapping[str, int]) -> None:
        """Rewards learned per model before a restart (the store's count), for the cold-start rule."""
        self.rewards.update(per_model)
        self._rewarm()

    def _rewarm(self) -> None:
        self._warm = {m for m, n in self.rewards.items() if n >= self.config.rules.cold_start_rewards}

    # -- learning ---------------------------------------------------------------------------

    def feedback(self, part: FeedbackPart, now: float) -> FeedbackResult:
        """Fold one feedback part in; learns when the event's join completes."""
        self._saw(now)
        self.counts["feedback_parts"] += 1
        result: PartResult = self.joiner.add_part(part)
        learned = None
        if result.status == COMPLETE and result.joined is not None:
            learned = self._finish(*result.joined, now)
        elif result.status == NOT_PENDING:
            self.counts["late_parts"] += 1
        return FeedbackResult(result.status, result.quality_applied, learned)

    def expire(self, now: float, limit: int | None = None) -> list[LearnedRow]:
        """Finish every decision whose wait window has passed (at most `limit`), with defaults for what is missing."""
        self._saw(now)
        out = []
        for decision, outcome in self.joiner.expire(now, limit):
            self.counts["expired"] += 1
            out.append(self._finish(decision, outcome, now))
        return out

    def _finish(self, decision: Decision, outcome: Outcome, now: float) -> LearnedRow:
        model = decision.model
        spec = self._known[model]
        r = reward.resolve(outcome, spec, decision.input_tokens, self.config.reward)
        self._observe(decision, outcome, r, spec, now)
        self.learned_seq += 1
        weights = self.config.reward.weights
        if r is None:
            self.counts["skipped"] += 1
            row = LearnedRow(
                self.learned_seq,
                decision.event_id,
                now,
                None,
                None,
                outcome.cost_usd,
                outcome.latency_ms,
                None,
                "quality",
                weights.cost_weight,
                weights.latency_weight,
            )
        else:
            if self.policy.decomposed:
                vw_cost = 1.0 - r.quality  # the quality learner's target; cost and latency are learned apart
            else:
                vw_cost = reward.to_vw_cost(r.value, self._span)
                self.policy.learn(decision.features, decision.models, decision.chosen, decision.probability, vw_cost)
            self.counts["learned"] += 1
            if "quality" in r.defaulted:
                self.counts["defaults_applied"] += 1
            row = LearnedRow(
                self.learned_seq,
                decision.event_id,
                now,
                r.value,
                r.quality,
                r.cost_usd,
                r.latency_ms,
                vw_cost,
                ",".join(r.defaulted),
                weights.cost_weight,
                weights.latency_weight,
            )
        if self.policy.decomposed:
            trainer.learn_row(self.policy, decision, row, self.config)
        if self.sink is not None:
            self.sink.learned(row)
        if self.observer is not None:
            self.observer.learned(decision, row)
        return row

    def warmstart(self, examples: Iterable[EvalExample]) -> WarmStart:
        """Learn from an eval sample with every model's outcome (full information) before routing.

        Each (prompt, model) outcome is one update at probability 1: the decomposed learner takes its
        quality, cost and latency into their own estimates (trainer.learn_example). The baseline
        (`baseline_model`, unless `policy.baseline_model` names one) becomes the model with the highest
        mean reward on the evals at the weights in force, among the models with an outcome on every example.
        """
        total: dict[str, float] = {}
        seen: Counter[str] = Counter()
        n_examples = n_updates = 0
        for ex in examples:
            n_examples += 1
            models = tuple(m for m in self.catalog.names if m in ex.outcomes)
            if self.policy.decomposed:
                rewards = trainer.learn_example(self.policy, ex, models, self.config, self.word_tokens)
            else:
                rewards = self._learn_full(ex, models)
            for model, value in rewards.items():
                self._count_reward(model)
                total[model] = total.get(model, 0.0) + value
                seen[model] += 1
            n_updates += len(rewards)
        means = {m: total[m] / seen[m] for m in seen}
        complete = [m for m in means if seen[m] == n_examples]
        best = max(complete, key=means.__getitem__) if complete else None
        self.policy.state.baseline = best
        self.counts["warmstart_updates"] += n_updates
        return WarmStart(n_examples, n_updates, best, means)

    def _learn_full(self, ex: EvalExample, models: tuple[str, ...]) -> dict[str, float]:
        """The VW reward learner's full-information update: each model's reward at probability 1."""
        input_tokens = features.estimate_tokens(ex.query)
        feats = features.featurize(ex.query, ex.metadata, self.config.features, self.word_tokens)
        rewards = {}
        for i, model in enumerate(models):
            r = reward.resolve(ex.outcomes[model], self._known[model], input_tokens, self.config.reward)
            if r is not None:
                self.policy.learn(feats, models, i, 1.0, reward.to_vw_cost(r.value, self._span))
                rewards[model] = r.value
        return rewards

    def _observe(
        self, decision: Decision, outcome: Outcome, r: reward.Reward | None, spec: ModelSpec, now: float
    ) -> None:
        """Feed the online state the rules read: failures, latency, spend, rewards per model."""
        model = decision.model
        if outcome.error is not None:
            self.observe_failure(model, now)
        if outcome.latency_ms is not None:
            self.latency.observe(model, outcome.latency_ms)
        if r is not None:
            self._count_reward(model)
            cost = r.cost_usd
        elif outcome.cost_usd is not None:
            cost = outcome.cost_usd
        else:
            out_tokens = (
                outcome.output_tokens if outcome.output_tokens is not None else self.config.reward.default_output_tokens
            )
            in_tokens = outcome.input_tokens if outcome.input_tokens is not None else decision.input_tokens
            cost = reward.estimated_cost(spec, in_tokens, out_tokens)
        self.spend.add(decision.tenant, cost, now)

    def observe_learned(self, row: LearnedRow, decision: Decision) -> None:
        """Fold a join the learner finished into the online state the rules read (multi-process mode)."""
        model = decision.model
        if row.latency_ms is not None and "latency" not in row.defaulted.split(","):
            self.latency.observe(model, row.latency_ms)
        if row.vw_cost is not None:
            self._count_reward(model)
        if row.cost_usd is not None:
            self.spend.add(decision.tenant, row.cost_usd, row.ts)

    def observe_failure(self, model: str, now: float) -> None:
        """A reported failure of `model`: it may start a cooldown (in the multi-process mode, each
        serving process counts the failures reported to it)."""
        if self.cooldowns.failure(model, now):
            self.counts["cooldowns_started"] += 1
            if self.observer is not None:
                self.observer.cooldown_started(model)

    # -- restart ----------------------------------------------------------------------------

    def relearn(self, rows: Iterable[tuple[LearnedRow, Decision]]) -> int:
        """Re-learn finished joins after a checkpoint, exactly as they were learned the first time."""
        n = 0
        for row, decision in rows:
            if self.policy.decomposed:
                trainer.learn_row(self.policy, decision, row, self.config)
                n += row.vw_cost is not None
            elif row.vw_cost is not None:
                self.policy.learn(
                    decision.features, decision.models, decision.chosen, decision.probability, row.vw_cost
                )
                n += 1
            self.learned_seq = max(self.learned_seq, row.seq)
        return n

    def restore_pending(self, decisions: Iterable[Decision], parts: Iterable[FeedbackPart]) -> None:
        """Wait again for decisions that were pending at the last stop (or that a serving process logged),
        with the parts already stored, as if they had just been made and reported.

        Each decision's own parts are folded in right after it, so a stored part is never left behind by
        a decision the `max_pending` bound pushes out; what the bound pushes out is finished with defaults
        exactly as Router.route finishes it (`wait_for`). A part for a decision already waiting completes
        it as live feedback would. `expire(now)` afterwards finishes those whose window has passed.
        """
        held: dict[str, list[FeedbackPart]] = {}
        later: list[FeedbackPart] = []
        batch = list(decisions)
        ids = {d.event_id for d in batch}
        for p in parts:
            if p.event_id in ids:
                held.setdefault(p.event_id, []).append(p)
            else:
                later.append(p)
        for d in batch:
            self.wait_for(d)
            for p in held.pop(d.event_id, ()):
                self._fold(p)
        for p in later:
            self._fold(p)

    def wait_for(self, decision: Decision) -> None:
        """Start waiting for a decision's feedback; what the `max_pending` bound releases to make room is
        finished with what it has (its defaults), as of the new decision's time. The one home of that
        sequence: Router.route and restore_pending both come through here."""
        deadline = decision.ts + self.config.reward.reward_wait_s
        for released in self.joiner.add(decision, deadline):
            self._finish(*released, decision.ts)

    def _fold(self, part: FeedbackPart) -> None:
        """A stored part taken back: joined like live feedback, timed as when it was reported."""
        result = self.joiner.add_part(part)
        if result.status == COMPLETE and result.joined is not None:
            self._finish(*result.joined, part.ts)
