"""Off-policy evaluation on a router's log, under any cost weight.

The log keeps each decision's pmf over its allowed set and the raw feedback of each finished join
(quality, cost, latency), so the reward can be recomputed under a weight that was never deployed.
Candidate (target) policies:
- `model:<name>`: always that model (rounds where it was not allowed are left out and counted);
- `uniform`: uniformly random over the allowed set;
- `greedy`: the logged policy without exploration (argmax of the logged pmf);
- `retrained`: a fresh bandit learning online from the log under the new weight, evaluated by
  progressive validation (each round is scored by the policy trained on the rounds before it).

`assess` leads with one recommended estimate per candidate, chosen by a rule fixed in advance (no
estimate is picked for looking better), from the candidate's support in the log: the effective
sample size of its importance weights, ESS = (sum w)^2 / sum w^2.
- ESS >= MIN_ESS: DR with its normal interval. The router logs the exact pmf it sampled from, so
  the importance weights are right and DR is unbiased whatever its reward model; the reward model
  (each model's mean logged reward) is a control variate that takes out the variance the models'
  different means cause, so DR is never much worse than IPS and usually better. With that many
  effective rounds the mean of its per-round terms is close enough to normal for a normal interval.
- 0 < ESS < MIN_ESS: too few effective rounds for a normal interval (a few heavy weights carry the
  estimate): SNIPS with a percentile bootstrap interval, flagged `low_support`. SNIPS stays within
  the range of the rewards observed; the bootstrap makes no normality assumption. Both only soften
  the problem: the flag says to log more exploration or to consider a candidate closer to the
  logged policy.
- ESS = 0: the candidate never takes an action the log holds; nothing can be estimated.

`coverage` is the share of the candidate's choices that the logged policy could have made (its
probability mass on actions the logged pmf gave p > 0, averaged over rounds: priced-out models and
paused exploration leave actions at p = 0). Below 1, IPS and SNIPS see only the covered part; DR's
reward model stands in for the rest, so the note says how much of the estimate rests on it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from banditroute import decider, estimators, trainer
from banditroute import reward as reward_formula
from banditroute.config import Config
from banditroute.policy import Policy
from banditroute.types import Decision, LearnedRow, ModelSpec, RewardWeights

# The classic rule of thumb for a mean's normal interval (about 30 equally weighted observations),
# applied to the effective number of rounds; a fixed design choice, not fitted to any data set.
MIN_ESS = 30.0
RECOMMENDED, LOW_SUPPORT, NO_SUPPORT = "recommended", "low_support", "no_support"


@dataclass(frozen=True)
class Round:
    decision: Decision
    quality: float
    cost_usd: float
    latency_ms: float


def rounds_from(decisions: Iterable[Decision], learned: Iterable[LearnedRow]) -> list[Round]:
    """Join decisions with their finished joins.

    Left out: rounds with nothing learned (skipped) and rounds whose quality was a default (no
    quality was observed, so their reward says nothing about the model). This assumes feedback goes
    missing independently of the model chosen; `left_out` in the results counts other exclusions.
    """
    by_event = {row.event_id: row for row in learned if "quality" not in row.defaulted.split(",")}
    out = []
    for d in decisions:
        row = by_event.get(d.event_id)
        if row is not None and row.quality is not None and row.cost_usd is not None and row.latency_ms is not None:
            out.append(Round(d, row.quality, row.cost_usd, row.latency_ms))
    return out


def rounds_from_store(path: str | Path) -> list[Round]:
    from banditroute.store.sqlite import Store

    store = Store(path)
    try:
        pairs = list(store.learned_after(0))
    finally:
        store.close()
    return rounds_from((d for _, d in pairs), (r for r, _ in pairs))


@dataclass(frozen=True)
class Assessment:
    """One candidate policy: its support in the log, the recommended estimate and why, every estimate."""

    target: str
    n: int  # the rounds the candidate is evaluated on
    left_out: int  # rounds where the candidate's model was not allowed
    ess: float  # effective sample size of the importance weights over those rounds
    coverage: float  # mean share of the candidate's probability on actions the log could have taken
    support: str  # RECOMMENDED, LOW_SUPPORT or NO_SUPPORT
    recommended: estimators.Estimate | None  # None when there is no support
    why: str
    estimates: tuple[estimators.Estimate, ...]

    def rows(self) -> list[dict[str, Any]]:
        """Every estimate as a flat row (`evaluate`'s output, the `--format json` `estimates`)."""
        return [
            {
                "target": self.target,
                "estimator": est.method,
                "value": est.value,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "n": est.n,
                "left_out": self.left_out,
                "ess": self.ess,
                "coverage": self.coverage,
            }
            for est in self.estimates
        ]

    def summary(self) -> dict[str, Any]:
        est = self.recommended
        return {
            "target": self.target,
            "estimator": est.method if est else None,
            "interval": "normal" if self.support == RECOMMENDED else "bootstrap" if est else None,
            "value": est.value if est else None,
            "ci_low": est.ci_low if est else None,
            "ci_high": est.ci_high if est else None,
            "n": self.n,
            "left_out": self.left_out,
            "ess": self.ess,
            "coverage": self.coverage,
            "support": self.support,
            "why": self.why,
        }


def evaluate(
    rounds: list[Round],
    weights: RewardWeights,
    config: Config,
    specs: Iterable[ModelSpec],
    *,
    targets: Iterable[str] | None = None,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """IPS, clipped IPS, SNIPS, DM and DR estimates of each target policy's mean reward, as flat rows."""
    return [row for a in assess(rounds, weights, config, specs, targets=targets, alpha=alpha) for row in a.rows()]


def assess(
    rounds: list[Round],
    weights: RewardWeights,
    config: Config,
    specs: Iterable[ModelSpec],
    *,
    targets: Iterable[str] | None = None,
    alpha: float = 0.05,
) -> list[Assessment]:
    """Each target policy's estimates and the recommended one (see the module docstring for the rule)."""
    if not rounds:
        raise ValueError("the log holds no finished rounds to evaluate")
    specs = list(specs)
    rewards = np.array([reward_formula.combine(r.quality, r.cost_usd, r.latency_ms, weights) for r in rounds])
    logged = np.array([r.decision.probability for r in rounds])
    q_hat = _per_model_means(rounds, rewards)
    names = sorted({m for r in rounds for m in r.decision.models})
    targets = (
        list(targets) if targets is not None else [f"model:{n}" for n in names] + ["uniform", "greedy", "retrained"]
    )
    out = []
    for target in targets:
        pmfs, keep = target_pmfs(target, rounds, weights, config, specs)
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            continue
        target_prob = np.array([pmfs[i][rounds[i].decision.chosen] for i in idx])
        q_logged = np.array([q_hat[rounds[i].decision.model] for i in idx])
        q_target = np.array([sum(p * q_hat[m] for p, m in zip(pmfs[i], rounds[i].decision.models)) for i in idx])
        every = estimators.evaluate_all(
            rewards[idx], logged[idx], target_prob, q_hat_logged=q_logged, q_hat_target=q_target, alpha=alpha
        )
        ess = estimators.effective_sample_size(target_prob / logged[idx])
        coverage = float(np.mean([sum(p for p, q in zip(pmfs[i], rounds[i].decision.pmf) if q > 0) for i in idx]))
        support, recommended, why = _recommend(every, ess, rewards[idx], logged[idx], target_prob, alpha)
        out.append(
            Assessment(
                target, len(idx), int(len(rounds) - len(idx)), ess, coverage, support, recommended, why, tuple(every)
            )
        )
    return out


def _recommend(
    every: list[estimators.Estimate],
    ess: float,
    rewards: np.ndarray,
    logged_prob: np.ndarray,
    target_prob: np.ndarray,
    alpha: float,
) -> tuple[str, estimators.Estimate | None, str]:
    if ess <= 0.0:
        return NO_SUPPORT, None, "the candidate never takes an action the log holds: no estimate is possible"
    if ess >= MIN_ESS:
        dr = next(e for e in every if e.method == "dr")
        return RECOMMENDED, dr, f"ESS {ess:.0f} >= {MIN_ESS:.0f}: DR (exact logged propensities), normal interval"
    snips = estimators.snips(rewards, logged_prob, target_prob, alpha=alpha, ci="bootstrap")
    return (
        LOW_SUPPORT,
        snips,
        f"ESS {ess:.1f} < {MIN_ESS:.0f}: SNIPS, bootstrap interval; low support, log more exploration",
    )


def logged_value(rounds: list[Round], weights: RewardWeights, alpha: float = 0.05) -> estimators.Estimate:
    """The logged policy's own mean reward (on-policy: every weight is 1), the reference for the candidates."""
    rewards = [reward_formula.combine(r.quality, r.cost_usd, r.latency_ms, weights) for r in rounds]
    probability = [r.decision.probability for r in rounds]
    return estimators.ips(rewards, probability, probability, alpha=alpha)


def _per_model_means(rounds: list[Round], rewards: np.ndarray) -> dict[str, float]:
    """The direct method's reward model: each model's mean logged reward (overall mean if unseen)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for r, value in zip(rounds, rewards):
        sums[r.decision.model].append(float(value))
    overall = float(np.mean(rewards))
    names = {m for r in rounds for m in r.decision.models}
    return {m: float(np.mean(sums[m])) if sums[m] else overall for m in names}


def target_pmfs(
    target: str, rounds: list[Round], weights: RewardWeights, config: Config, specs: list[ModelSpec]
) -> tuple[list[list[float]], np.ndarray]:
    pmfs: list[list[float]] = []
    keep = np.ones(len(rounds), dtype=bool)
    if target == "retrained":
        cfg = config.with_overrides(
            reward={"cost_weight": weights.cost_weight, "latency_weight": weights.latency_weight}
        )
        known = {s.name: s for s in specs}
        for r in rounds:
            for m in r.decision.models:
                known.setdefault(m, ModelSpec(m, 0.0, 0.0, 1))
        policy = Policy(cfg.policy, list(known.values()))
        span = reward_formula.reward_span(specs, cfg.reward)
        for r in rounds:
            d = r.decision
            value = reward_formula.combine(r.quality, r.cost_usd, r.latency_ms, weights)
            if policy.decomposed:  # the Thompson pmf without a budget; learned as the live router learns
                out_tokens = cfg.reward.default_output_tokens
                draws = cfg.policy.thompson_draws
                choice = decider.decide(
                    policy, d.models, d.features, d.input_tokens, weights, out_tokens, draws, None, 0
                )
                pmfs.append(choice.pmf)
                row = LearnedRow(
                    0,
                    d.event_id,
                    d.ts,
                    value,
                    r.quality,
                    r.cost_usd,
                    r.latency_ms,
                    1.0 - r.quality,
                    "",
                    weights.cost_weight,
                    weights.latency_weight,
                )
                trainer.learn_row(policy, d, row, cfg)
                continue
            pmfs.append(policy.predict(d.features, d.models))
            policy.learn(d.features, d.models, d.chosen, d.probability, reward_formula.to_vw_cost(value, span))
        return pmfs, keep
    for i, r in enumerate(rounds):
        models = r.decision.models
        if target == "uniform":
            pmfs.append([1.0 / len(models)] * len(models))
        elif target == "greedy":
            best = max(range(len(models)), key=r.decision.pmf.__getitem__)
            pmfs.append([1.0 if j == best else 0.0 for j in range(len(models))])
        elif target.startswith("model:"):
            name = target.removeprefix("model:")
            if name in models:
                pmfs.append([1.0 if m == name else 0.0 for m in models])
            else:
                pmfs.append([0.0] * len(models))
                keep[i] = False
        else:
            raise ValueError(f"unknown target policy {target!r}: use model:<name>, uniform, greedy or retrained")
    return pmfs, keep
