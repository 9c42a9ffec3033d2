"""Off-policy evaluation on a router's log, under any cost weight.

The log keeps each decision's pmf over its allowed set and the raw feedback of each finished join
(quality, cost, latency), so the reward can be recomputed under a weight that was never deployed.
Candidate (target) policies:
- `model:<name>`: always that model (rounds where it was not allowed are left out and counted);
- `uniform`: uniformly random over the allowed set;
- `greedy`: the logged policy without exploration (argmax of the logged pmf);
- `retrained`: a fresh bandit learning online from the log under the new weight, evaluated by
  progressive validation (each round is scored by the policy trained on the rounds before it).
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


def evaluate(
    rounds: list[Round],
    weights: RewardWeights,
    config: Config,
    specs: Iterable[ModelSpec],
    *,
    targets: Iterable[str] | None = None,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """IPS, clipped IPS, SNIPS, DM and DR estimates of each target policy's mean reward."""
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
        for est in estimators.evaluate_all(
            rewards[idx], logged[idx], target_prob, q_hat_logged=q_logged, q_hat_target=q_target, alpha=alpha
        ):
            out.append(
                {
                    "target": target,
                    "estimator": est.method,
                    "value": est.value,
                    "ci_low": est.ci_low,
                    "ci_high": est.ci_high,
                    "n": est.n,
                    "left_out": int(len(rounds) - len(idx)),
                }
            )
    return out


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
