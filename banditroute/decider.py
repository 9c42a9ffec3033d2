"""The decomposed learner's decision: estimated quality + known cost and latency terms, explored by
model-level Thompson sampling under the conservative budget (exploration.py). Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from banditroute import exploration, quality
from banditroute.policy import Policy
from banditroute.types import RewardWeights

_TABLES: dict[int, np.ndarray] = {}


def draws(n: int) -> np.ndarray:
    table = _TABLES.get(n)
    if table is None:
        table = _TABLES[n] = exploration.draw_table(n)
    return table


@dataclass(frozen=True, slots=True)
class Choice:
    pmf: list[float]
    greedy: int  # the best estimated reward
    budgeted: bool  # the budget took mass away from some models


def penalties(
    policy: Policy, models: tuple[str, ...], input_tokens: int, weights: RewardWeights, default_output_tokens: int
) -> np.ndarray:
    state, specs = policy.state, policy.specs
    return np.array(
        [quality.penalty(state.get(m), specs[m], input_tokens, weights, default_output_tokens) for m in models]
    )


def decide(
    policy: Policy,
    models: tuple[str, ...],
    features: str,
    input_tokens: int,
    weights: RewardWeights,
    default_output_tokens: int,
    n_draws: int,
    baseline: str | None,
    budget: float,
) -> Choice:
    mean, width = policy.quality(features, models)
    penalty = penalties(policy, models, input_tokens, weights, default_output_tokens)
    pmf = exploration.thompson_pmf(draws(n_draws), mean, width, penalty)
    rewards = np.clip(mean, 0.0, 1.0) - penalty
    greedy = int(rewards.argmax())
    budgeted = False
    if baseline is not None and baseline in models:
        state = policy.state
        pmf, budgeted = exploration.conservative(pmf, rewards, models.index(baseline), state.served, state.base, budget)
    return Choice(pmf.tolist(), greedy, budgeted)


def estimated_rewards(
    policy: Policy,
    models: tuple[str, ...],
    features: str,
    input_tokens: int,
    weights: RewardWeights,
    default_output_tokens: int,
) -> np.ndarray:
    mean, _ = policy.quality(features, models)
    return np.clip(mean, 0.0, 1.0) - penalties(policy, models, input_tokens, weights, default_output_tokens)
