"""Baselines on the same stream as the router: what a user gets without a learning router.

All of them see every model's outcome (full information), which the online router never does:
- `model:<name>`: always that model;
- `random`: a uniformly random model per request (its expectation);
- `best_fixed`: the single model with the best mean reward, chosen in hindsight;
- `oracle`: the best model for each request, chosen in hindsight (an upper bound);
- `cost_greedy`: always the model with the lowest catalog price;
- `skyline`: a full-information classifier over the router's own features, trained offline with
  two-fold cross-fitting (each half is scored by a model trained on the other half).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from banditroute import features as feats
from banditroute.config import Config
from banditroute.policy import RewardModel
from banditroute.types import RewardWeights
from simulators.worlds import World


@dataclass(frozen=True)
class Outcomes:
    """Every model's true outcome at every step: rows are steps, columns `models` (NaN: unavailable)."""

    models: tuple[str, ...]
    quality: np.ndarray
    cost_usd: np.ndarray
    latency_ms: np.ndarray

    def reward(self, weights: RewardWeights) -> np.ndarray:
        return (self.quality - weights.cost_weight * self.cost_usd / weights.cost_scale
                - weights.latency_weight * self.latency_ms / weights.latency_scale)


def full_outcomes(world: World) -> Outcomes:
    names: list[str] = []
    for step in (0, len(world) - 1):
        names += [m.name for m in world.models(step) if m.name not in names]
    shape = (len(world), len(names))
    quality, cost, latency = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for step in range(len(world)):
        available = {m.name for m in world.models(step)}
        for j, name in enumerate(names):
            if name in available:
                r = world.outcome(step, name)
                quality[step, j], cost[step, j], latency[step, j] = r.quality, r.cost_usd, r.latency_ms
    return Outcomes(tuple(names), quality, cost, latency)


def _row(name: str, quality: np.ndarray, cost: np.ndarray, reward: np.ndarray) -> dict[str, Any]:
    return {"policy": name, "mean_quality": float(np.mean(quality)), "mean_cost_usd": float(np.mean(cost)),
            "mean_reward": float(np.mean(reward))}


def _pick(values: np.ndarray, choice: np.ndarray) -> np.ndarray:
    return values[np.arange(len(choice)), choice]


def fixed_baselines(outcomes: Outcomes, weights: RewardWeights, world: World) -> list[dict[str, Any]]:
    """Single models, random, best fixed, oracle and cost-greedy at the given weights."""
    reward = outcomes.reward(weights)
    rows = []
    singles = []
    for j, name in enumerate(outcomes.models):
        ok = ~np.isnan(reward[:, j])
        row = _row(f"model:{name}", outcomes.quality[ok, j], outcomes.cost_usd[ok, j], reward[ok, j])
        row["coverage"] = float(ok.mean())
        rows.append(row)
        if ok.all():
            singles.append(row)
    best = max(singles, key=lambda r: r["mean_reward"])
    rows.append({**best, "policy": "best_fixed", "model": best["policy"].removeprefix("model:")})
    rows.append(_row("random", np.nanmean(outcomes.quality, axis=1), np.nanmean(outcomes.cost_usd, axis=1),
                     np.nanmean(reward, axis=1)))
    oracle = np.nanargmax(np.where(np.isnan(reward), -np.inf, reward), axis=1)
    rows.append(_row("oracle", _pick(outcomes.quality, oracle), _pick(outcomes.cost_usd, oracle),
                     _pick(reward, oracle)))
    price = []
    for step in range(len(world)):
        specs = {m.name: m for m in world.models(step)}
        blended = [((specs[n].input_price + 3 * specs[n].output_price) if n in specs else np.inf)
                   for n in outcomes.models]
        price.append(int(np.argmin(blended)))
    greedy = np.array(price)
    rows.append(_row("cost_greedy", _pick(outcomes.quality, greedy), _pick(outcomes.cost_usd, greedy),
                     _pick(reward, greedy)))
    return rows


class Skyline:
    """Two-fold cross-fitted full-information router over the router's own features.

    Quality is learned per model from the text (a VW regression over the same features and
    interactions as the router); cost and latency are predicted per model by their means on the
    training half. Fitted once per world, it then picks `argmax(q_hat - cost and latency terms)`
    for any weights, so a sweep pays for training once.
    """

    def __init__(self, world: World, outcomes: Outcomes, config: Config, *, passes: int = 2, seed: int = 0):
        n, models = len(world), outcomes.models
        specs = {m.name: m for step in (0, n - 1) for m in world.models(step)}
        fold = np.random.default_rng(seed).permutation(n) % 2
        self.outcomes = outcomes
        self.q_hat = np.zeros((n, len(models)))
        self.c_hat = np.zeros((n, len(models)))
        self.l_hat = np.zeros((n, len(models)))
        requests = [world.request(s) for s in range(n)]
        features = [feats.featurize(r.query, r.metadata, config.features) for r in requests]
        for held_out in (0, 1):
            train, test = np.flatnonzero(fold != held_out), np.flatnonzero(fold == held_out)
            model = RewardModel(config.policy, [specs[m] for m in models])
            for _ in range(passes):
                for s in train:
                    for j in range(len(models)):
                        if not np.isnan(outcomes.quality[s, j]):
                            model.learn(features[s], models, j, 1.0 - outcomes.quality[s, j])
            for s in test:
                self.q_hat[s] = 1.0 - np.array(model.predict(features[s], models))
            self.c_hat[test] = np.nanmean(outcomes.cost_usd[train], axis=0)
            self.l_hat[test] = np.nanmean(outcomes.latency_ms[train], axis=0)

    def row(self, weights: RewardWeights) -> dict[str, Any]:
        o = self.outcomes
        score = (self.q_hat - weights.cost_weight * self.c_hat / weights.cost_scale
                 - weights.latency_weight * self.l_hat / weights.latency_scale)
        score[np.isnan(o.quality)] = -np.inf
        choice = np.argmax(score, axis=1)
        return _row("skyline", _pick(o.quality, choice), _pick(o.cost_usd, choice), _pick(o.reward(weights), choice))


def regret_curve(router_rewards: np.ndarray, outcomes: Outcomes, weights: RewardWeights,
                 points: int = 20) -> list[dict[str, float]]:
    """Cumulative regret of the router against best-fixed and the oracle at `points` steps."""
    reward = outcomes.reward(weights)
    full = ~np.isnan(reward).any(axis=0)
    best_j = int(np.argmax(np.where(full, np.nanmean(reward, axis=0), -np.inf)))
    oracle = np.nanmax(reward, axis=1)
    n = len(router_rewards)
    gap_fixed = np.cumsum(reward[:n, best_j] - router_rewards)
    gap_oracle = np.cumsum(oracle[:n] - router_rewards)
    marks = np.unique(np.linspace(1, n, min(points, n)).astype(int))
    return [{"step": int(t), "regret_vs_best_fixed": float(gap_fixed[t - 1]),
             "regret_vs_oracle": float(gap_oracle[t - 1])} for t in marks]


def apgr(strong_share: np.ndarray, quality: np.ndarray, weak_quality: float, strong_quality: float) -> float:
    """RouteLLM's average performance gap recovered: the area under PGR(share of strong-model calls).

    PGR = (quality - weak) / (strong - weak). Points are sorted by share and the curve is anchored at
    (0, 0) and (1, 1), the two models alone; the area uses the trapezoid rule.
    """
    gap = strong_quality - weak_quality
    if gap <= 0:
        raise ValueError("the strong model must have a higher quality than the weak one")
    order = np.argsort(strong_share)
    x = np.concatenate([[0.0], np.asarray(strong_share)[order], [1.0]])
    y = np.concatenate([[0.0], (np.asarray(quality)[order] - weak_quality) / gap, [1.0]])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def cpt(strong_share: np.ndarray, quality: np.ndarray, weak_quality: float, strong_quality: float,
        level: float) -> float:
    """RouteLLM's call-performance threshold: the least share of strong calls reaching PGR `level`."""
    pgr = (np.asarray(quality) - weak_quality) / (strong_quality - weak_quality)
    reached = np.asarray(strong_share)[pgr >= level]
    return float(reached.min()) if len(reached) else 1.0
