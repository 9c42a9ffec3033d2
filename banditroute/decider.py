"""The decomposed learner's decision: estimated quality + known cost and latency terms, explored by
model-level Thompson sampling under the conservative budget (exploration.py). Pure, no I/O."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from banditroute import exploration, quality
from banditroute import rules as guardrails
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
    rewards = _rewards(mean, penalty)
    budgeted = False
    if baseline is not None and baseline in models:
        state = policy.state
        pmf, budgeted = exploration.conservative(pmf, rewards, models.index(baseline), state.served, state.base, budget)
    return Choice(pmf.tolist(), budgeted)


def estimated_rewards(
    policy: Policy,
    models: tuple[str, ...],
    features: str,
    input_tokens: int,
    weights: RewardWeights,
    default_output_tokens: int,
) -> np.ndarray:
    mean, _ = policy.quality(features, models)
    return _rewards(mean, penalties(policy, models, input_tokens, weights, default_output_tokens))


def _rewards(mean: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """The estimated reward per model: quality at its mean (in 0..1) less the known cost and latency terms."""
    return np.clip(mean, 0.0, 1.0) - penalty


def degenerate(n: int, chosen: int) -> list[float]:
    return [1.0 if i == chosen else 0.0 for i in range(n)]


def reason(how: str, p: float, n_allowed: int, verdict: guardrails.Allowed) -> str:
    """One line for the answer and the log: how the model was chosen, the rules applied, what they excluded."""
    text = f"{how} (p={p:.3f}) among {n_allowed} allowed"
    if verdict.rules:
        text += "; rules: " + ", ".join(
            f"{rule}({verdict.notes[rule]})" if rule in verdict.notes else rule for rule in verdict.rules
        )
    if verdict.excluded:
        by_rule: dict[str, list[str]] = {}
        for model, rule in verdict.excluded.items():
            by_rule.setdefault(rule, []).append(model)
        text += "; excluded: " + "; ".join(f"{','.join(models)} by {rule}" for rule, models in by_rule.items())
    return sys.intern(text)  # few distinct texts: pending decisions share one copy each


def ranked(models: tuple[str, ...], pmf: list[float]) -> list[str]:
    """Models by probability, highest first (ties keep catalog order)."""
    return [models[i] for i in sorted(range(len(models)), key=lambda i: -pmf[i])]
