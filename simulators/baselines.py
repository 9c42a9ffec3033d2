"""Baselines on the same stream as the router: what a user gets without a learning router.

All of them see every model's outcome (full information), which the online router never does:
- `model:<name>`: always that model;
- `random`: a uniformly random model per request (its expectation);
- `best_fixed`: the single model with the best mean reward, chosen in hindsight;
- `oracle`: the best model for each request, chosen in hindsight (an upper bound);
- `cost_greedy`: always the model with the lowest catalog price;
- `skyline`: a full-information ridge regression of each model's quality on the text (hashed
  TF-IDF of words and bigrams), trained offline with two-fold cross-fitting (each half is scored
  by a model trained on the other half; the ridge strength is chosen inside the training half).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from banditroute.reward import combine
from banditroute.types import RewardWeights
from simulators.worlds import World

# The skyline's ridge regression: hashed feature buckets, words read per prompt, ridge strengths tried.
SKYLINE_DIMS = 4096
SKYLINE_MAX_WORDS = 256
SKYLINE_LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
SVD_TOLERANCE = 1e-10  # singular directions below this share of the largest are dropped
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Outcomes:
    """Every model's true outcome at every step: rows are steps, columns `models` (NaN: unavailable)."""

    models: tuple[str, ...]
    quality: np.ndarray
    cost_usd: np.ndarray
    latency_ms: np.ndarray

    def reward(self, weights: RewardWeights) -> np.ndarray:
        return combine(self.quality, self.cost_usd, self.latency_ms, weights)


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
    return {
        "policy": name,
        "mean_quality": float(np.mean(quality)),
        "mean_cost_usd": float(np.mean(cost)),
        "mean_reward": float(np.mean(reward)),
    }


def _pick(values: np.ndarray, choice: np.ndarray) -> np.ndarray:
    return values[np.arange(len(choice)), choice]


def best_model(outcomes: Outcomes, weights: RewardWeights, start: int = 0, stop: int | None = None) -> int:
    """The column of the model with the best mean reward over steps [start, stop), among the models
    available at every one of those steps (a fixed choice must be servable throughout)."""
    reward = outcomes.reward(weights)[start:stop]
    full = np.flatnonzero(~np.isnan(reward).any(axis=0))
    if not len(full):
        raise ValueError(f"no model is available at every step of [{start}, {stop})")
    return int(full[np.argmax(reward[:, full].mean(axis=0))])


def fixed_baselines(outcomes: Outcomes, weights: RewardWeights, world: World, start: int = 0) -> list[dict[str, Any]]:
    """Single models, random, best fixed, oracle and cost-greedy at the given weights, over steps from `start`."""
    if start:
        outcomes = Outcomes(
            outcomes.models, outcomes.quality[start:], outcomes.cost_usd[start:], outcomes.latency_ms[start:]
        )
    reward = outcomes.reward(weights)
    rows = []
    for j, name in enumerate(outcomes.models):
        ok = ~np.isnan(reward[:, j])
        row = _row(f"model:{name}", outcomes.quality[ok, j], outcomes.cost_usd[ok, j], reward[ok, j])
        row["coverage"] = float(ok.mean())
        rows.append(row)
    best_j = best_model(outcomes, weights)
    rows.append({**rows[best_j], "policy": "best_fixed", "model": outcomes.models[best_j]})
    rows.append(
        _row(
            "random",
            np.nanmean(outcomes.quality, axis=1),
            np.nanmean(outcomes.cost_usd, axis=1),
            np.nanmean(reward, axis=1),
        )
    )
    oracle = np.nanargmax(np.where(np.isnan(reward), -np.inf, reward), axis=1)
    rows.append(
        _row("oracle", _pick(outcomes.quality, oracle), _pick(outcomes.cost_usd, oracle), _pick(reward, oracle))
    )
    price = []
    for step in range(start, len(world)):
        specs = {m.name: m for m in world.models(step)}
        blended = [
            ((specs[n].input_price + 3 * specs[n].output_price) if n in specs else np.inf) for n in outcomes.models
        ]
        price.append(int(np.argmin(blended)))
    greedy = np.array(price)
    rows.append(
        _row("cost_greedy", _pick(outcomes.quality, greedy), _pick(outcomes.cost_usd, greedy), _pick(reward, greedy))
    )
    return rows


class Skyline:
    """Two-fold cross-fitted full-information router: closed-form ridge regression on the text.

    Each prompt becomes a hashed TF-IDF vector of its word unigrams and bigrams (`dims` buckets,
    sublinear term frequency, inverse document frequency from the training half, rows scaled to unit
    length). Each model's quality is a ridge regression on it (intercept unpenalised), its ridge
    strength chosen per model from `lambdas` by exact leave-one-out error on the training half (the
    closed form of ridge's LOO residuals), so the test half never informs the fit. Cost and latency
    are predicted per model by their means on the training half. Fitted once per world, it then picks
    `argmax(q_hat - cost and latency terms)` for any weights, so a sweep pays for training once.
    """

    def __init__(
        self,
        world: World,
        outcomes: Outcomes,
        *,
        seed: int = 0,
        dims: int = SKYLINE_DIMS,
        lambdas: tuple[float, ...] = SKYLINE_LAMBDAS,
        max_words: int = SKYLINE_MAX_WORDS,
    ):
        n = len(world)
        fold = np.random.default_rng(seed).permutation(n) % 2
        self.outcomes = outcomes
        self.lambdas: list[np.ndarray] = []  # the chosen ridge strength per model, one array per fold
        self.q_hat = np.zeros(outcomes.quality.shape)
        self.c_hat = np.zeros(outcomes.quality.shape)
        self.l_hat = np.zeros(outcomes.quality.shape)
        counts = _hashed_counts([world.request(s).query for s in range(n)], dims, max_words)
        for held_out in (0, 1):
            train, test = np.flatnonzero(fold != held_out), np.flatnonzero(fold == held_out)
            x_train, x_test = _tfidf(counts, dims, train, test)
            quality = outcomes.quality[train]
            quality = np.where(np.isnan(quality), np.nanmean(quality, axis=0), quality)
            predicted, chosen = _ridge_loo(x_train, quality, x_test, lambdas)
            self.q_hat[test] = predicted
            self.lambdas.append(chosen)
            self.c_hat[test] = np.nanmean(outcomes.cost_usd[train], axis=0)
            self.l_hat[test] = np.nanmean(outcomes.latency_ms[train], axis=0)

    def row(self, weights: RewardWeights, start: int = 0) -> dict[str, Any]:
        """Its mean quality, cost and reward at `weights` over the steps from `start`."""
        o = self.outcomes
        score = combine(self.q_hat, self.c_hat, self.l_hat, weights)
        score[np.isnan(o.quality)] = -np.inf
        choice = np.argmax(score[start:], axis=1)
        return _row(
            "skyline",
            _pick(o.quality[start:], choice),
            _pick(o.cost_usd[start:], choice),
            _pick(o.reward(weights)[start:], choice),
        )


def _hashed_counts(texts: list[str], dims: int, max_words: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per text, the hashed buckets of its word unigrams and bigrams and their counts."""
    bucket: dict[str, int] = {}
    out = []
    for text in texts:
        words = _WORDS.findall(text[: max_words * 16].lower())[:max_words]
        terms = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        ids = []
        for t in terms:
            b = bucket.get(t)
            if b is None:
                b = bucket[t] = zlib.crc32(t.encode()) % dims
            ids.append(b)
        cols, freq = np.unique(np.array(ids, dtype=np.int64), return_counts=True)
        out.append((cols, freq.astype(np.float64)))
    return out


def _tfidf(
    counts: list[tuple[np.ndarray, np.ndarray]], dims: int, train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Dense TF-IDF rows (unit length) of `train` and `test`, the IDF from `train` only."""
    df = np.zeros(dims)
    for i in train:
        df[counts[i][0]] += 1
    idf = np.log((1 + len(train)) / (1 + df)) + 1

    def dense(rows: np.ndarray) -> np.ndarray:
        x = np.zeros((len(rows), dims))
        for r, i in enumerate(rows):
            cols, freq = counts[i]
            x[r, cols] = (1 + np.log(freq)) * idf[cols]
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norm > 0, norm, 1.0)

    return dense(train), dense(test)


def _ridge_loo(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, lambdas: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge predictions for `x_test`, one column per column of `y`, each with the strength in
    `lambdas` of least leave-one-out squared error on (`x`, `y`).

    Through the SVD of the centred design X = Z S Q^T (from the eigendecomposition of the smaller
    Gram matrix): fitted values Z diag(s^2/(s^2+l)) Z^T y, hat-matrix diagonal sum_k Z_ik^2 s_k^2/(s_k^2+l),
    LOO residual (y - fitted) / (1 - h_ii) (+ 1/n for the unpenalised intercept).
    """
    n = len(x)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    if n <= x.shape[1]:
        s2, z = np.linalg.eigh(xc @ xc.T)
        keep = s2 > SVD_TOLERANCE * s2.max()
        s2, z = s2[keep], z[:, keep]
        q = xc.T @ z / np.sqrt(s2)
    else:
        s2, q = np.linalg.eigh(xc.T @ xc)
        keep = s2 > SVD_TOLERANCE * s2.max()
        s2, q = s2[keep], q[:, keep]
        z = xc @ q / np.sqrt(s2)
    zty = z.T @ yc
    errors = np.empty((len(lambdas), y.shape[1]))
    for k, lam in enumerate(lambdas):
        shrink = s2 / (s2 + lam)
        fitted = z @ (shrink[:, None] * zty)
        hat = (z * z) @ shrink + 1.0 / n
        errors[k] = np.mean(((yc - fitted) / (1.0 - hat)[:, None]) ** 2, axis=0)
    best = np.argmin(errors, axis=0)
    chosen = np.asarray(lambdas)[best]
    beta = q @ ((np.sqrt(s2)[:, None] / (s2[:, None] + chosen[None, :])) * zty)
    return (x_test - x_mean) @ beta + y_mean, chosen


def regret_curve(
    router_rewards: np.ndarray, outcomes: Outcomes, weights: RewardWeights, points: int = 20
) -> list[dict[str, float]]:
    """Cumulative regret of the router against best-fixed and the oracle at `points` steps."""
    reward = outcomes.reward(weights)
    best_j = best_model(outcomes, weights)
    oracle = np.nanmax(reward, axis=1)
    n = len(router_rewards)
    gap_fixed = np.cumsum(reward[:n, best_j] - router_rewards)
    gap_oracle = np.cumsum(oracle[:n] - router_rewards)
    marks = np.unique(np.linspace(1, n, min(points, n)).astype(int))
    return [
        {"step": int(t), "regret_vs_best_fixed": float(gap_fixed[t - 1]), "regret_vs_oracle": float(gap_oracle[t - 1])}
        for t in marks
    ]


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


def cpt(
    strong_share: np.ndarray, quality: np.ndarray, weak_quality: float, strong_quality: float, level: float
) -> float:
    """RouteLLM's call-performance threshold: the least share of strong calls reaching PGR `level`."""
    pgr = (np.asarray(quality) - weak_quality) / (strong_quality - weak_quality)
    reached = np.asarray(strong_share)[pgr >= level]
    return float(reached.min()) if len(reached) else 1.0
