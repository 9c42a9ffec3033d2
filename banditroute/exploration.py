"""Exploration that knows what it costs: model-level Thompson sampling over the combined score, and the
conservative budget against a baseline model. Pure (numpy), no VW, no I/O.

Thompson pmf. Each model's score is `clip(quality draw, 0, 1) - penalty`, where the quality draw is the
request's quality estimate (model mean + contextual residual, at its mean) plus the model mean's posterior
width times a standard normal; the penalty (cost and latency terms) is known. The pmf is the share of
`draws` joint draws each model wins. The draws are a fixed stratified table (every model column holds the
normal quantiles of (j + 0.5) / draws, in its own fixed order), not fresh random numbers: the pmf is then a
function of the learner's state and the request only, so a restarted service predicts the same pmf and a
decision is reproducible from its log row (the served model is sampled from the pmf with the event's own
`uniform_from` draw). A model that cannot win even at quality 1 (its penalty exceeds another's by more
than 1: `reward.priced_out`, here with the estimated costs) never wins a draw: p = 0.

Conservative budget (after Wu et al. 2016, "Conservative contextual bandits"). With a baseline model b,
the learner keeps, over the decisions it learned from, the estimated reward of what it served, R, and of
what the baseline would have got, B, both by its estimates at learning time. A model k may keep its
share of the pmf on a request only if serving it keeps the promise

    R + r_k >= B + r_b - budget * |B + r_b|

(r: the estimated rewards on this request). The pmf is renormalised over the models that keep it; if
none does, the greedy model (the best estimate, which is at least as good as the baseline by the
estimates) is served with p = 1. Restricting the pmf before sampling, not overriding the sampled
model, keeps the logged propensity the true one. Exploring models therefore spends a budget that the
router earns by beating the baseline (a greedy choice that is better than the baseline adds to it).
The promise holds over learned decisions; decisions still waiting for feedback are not yet counted,
so the bound can be overdrawn by what is in flight.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

_MAX_MODELS = 256  # table columns; a wider allowed set reuses them


def draw_table(draws: int) -> np.ndarray:
    """`draws` x `_MAX_MODELS` standard normals: each column the stratified quantiles, shuffled with a fixed seed."""
    dist = NormalDist()
    quantiles = np.array([dist.inv_cdf((j + 0.5) / draws) for j in range(draws)])
    rng = np.random.default_rng(20161205)
    return np.stack([rng.permutation(quantiles) for _ in range(_MAX_MODELS)], axis=1)


def thompson_pmf(table: np.ndarray, quality: np.ndarray, width: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """The share of the table's draws each model wins; quality, width, penalty aligned with the models."""
    k = len(quality)
    z = table[:, :k] if k <= table.shape[1] else table[:, np.arange(k) % table.shape[1]]
    scores = np.clip(quality + width * z, 0.0, 1.0) - penalty
    wins = np.bincount(scores.argmax(axis=1), minlength=k)
    return wins / table.shape[0]


def conservative(pmf: np.ndarray, rewards: np.ndarray, baseline: int, served: float, base: float, budget: float):
    """The pmf restricted to the models that keep the budget promise (see the module docstring), and
    whether it changed; `served`, `base`: R and B so far."""
    floor = base + rewards[baseline]
    floor -= budget * abs(floor)
    keep = served + rewards >= floor
    if keep.all():
        return pmf, False
    kept = np.where(keep, pmf, 0.0)
    total = kept.sum()
    if total <= 0.0:
        kept = np.zeros_like(pmf)
        kept[int(rewards.argmax())] = 1.0
        return kept, True
    return kept / total, True
