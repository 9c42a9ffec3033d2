"""The reward formula, shared by the service, the simulators and the estimators. Pure.

    reward = quality - cost_weight * cost_usd / cost_scale - latency_weight * latency_ms / latency_scale

`cost_weight` is the cost-quality knob: how many quality points one `cost_scale` of spend is worth
(with the default `cost_scale` of 0.001 USD, the cost term counts USD per 1,000 requests).

Vowpal Wabbit minimises a cost in [0, 1], so the reward is mapped affinely onto that range:

    vw_cost = clip((1 - reward) / span, 0, 1),  span = 1 + cost_weight * c_ref + latency_weight * l_ref

where `c_ref` and `l_ref` are the normalised cost and latency of the most expensive and slowest
catalog model on a reference request. An affine map keeps the argmax of the expected reward, so the
policy optimises the same objective; only rewards below the reference floor are clipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from banditroute.config import RewardConfig
from banditroute.types import ModelSpec, Outcome, RewardWeights

if TYPE_CHECKING:
    import numpy as np

# floats for one call, numpy arrays for many (the formula is plain arithmetic)
Num = TypeVar("Num", float, "np.ndarray")

# Quality given to a call that failed and never got a quality of its own: it delivered nothing.
FAILURE_QUALITY = 0.0


@dataclass(frozen=True, slots=True)
class Reward:
    value: float
    quality: float
    cost_usd: float
    latency_ms: float
    defaulted: tuple[str, ...]  # parts that were filled in because they never arrived


def combine(quality: Num, cost_usd: Num, latency_ms: Num, weights: RewardWeights) -> Num:
    """The reward of one call, or element-wise over numpy arrays of calls (the simulators' baselines)."""
    return (
        quality
        - weights.cost_weight * cost_usd / weights.cost_scale
        - weights.latency_weight * latency_ms / weights.latency_scale
    )


def estimated_cost(spec: ModelSpec, input_tokens: int, output_tokens: int) -> float:
    return spec.cost_usd(input_tokens, output_tokens)


def estimated_latency(spec: ModelSpec, output_tokens: int) -> float:
    return spec.latency_ttft_ms + 1000.0 * output_tokens / max(spec.tokens_per_s, 1e-9)


def resolve(outcome: Outcome, spec: ModelSpec, input_tokens: int, config: RewardConfig) -> Reward | None:
    """Fill in what never arrived and compute the reward; None when there is nothing to learn.

    Missing quality: FAILURE_QUALITY after an error, else `default_quality` (None: skip).
    Missing cost: catalog prices x (reported or estimated input tokens, reported or
    `default_output_tokens` output tokens). Missing latency: the catalog's latency prior.
    """
    defaulted = []
    quality = outcome.quality
    if quality is None:
        if outcome.error is not None:
            quality = FAILURE_QUALITY
        elif config.default_quality is None:
            return None
        else:
            quality = config.default_quality
        defaulted.append("quality")
    out_tokens = outcome.output_tokens if outcome.output_tokens is not None else config.default_output_tokens
    cost = outcome.cost_usd
    if cost is None:
        in_tokens = outcome.input_tokens if outcome.input_tokens is not None else input_tokens
        cost = estimated_cost(spec, in_tokens, out_tokens)
        if outcome.input_tokens is None and outcome.output_tokens is None:
            defaulted.append("cost")
    latency = outcome.latency_ms
    if latency is None:
        latency = estimated_latency(spec, out_tokens)
        defaulted.append("latency")
    value = combine(quality, cost, latency, config.weights)
    return Reward(value, quality, cost, latency, tuple(defaulted))


def penalty_terms(specs: Iterable[ModelSpec], config: RewardConfig) -> dict[str, tuple[float, float]]:
    """Each model's estimated cost and latency penalty as `fixed + per_input_token * input_tokens`.

    The penalty is linear in the prompt's tokens, so the router computes these once per catalog and
    weights and `priced_out` stays cheap on the decision path.
    """
    w = config.weights
    out = config.default_output_tokens
    return {
        s.name: (
            w.cost_weight * estimated_cost(s, 0, out) / w.cost_scale
            + w.latency_weight * estimated_latency(s, out) / w.latency_scale,
            w.cost_weight * s.input_price / 1e6 / w.cost_scale,
        )
        for s in specs
    }


def priced_out(
    specs: Iterable[ModelSpec],
    input_tokens: int,
    config: RewardConfig,
    terms: Sequence[tuple[str, float, float]] | None = None,
) -> set[str]:
    """Models that cannot win this request at any quality: by the catalog's cost and latency
    estimates, their reward at quality 1 is below another model's reward at quality 0. Exploring
    them teaches nothing worth its price (at a high cost weight, the most expensive models).
    `terms`: `(name, fixed, per_input_token)` of exactly the candidate models, from `penalty_terms`
    computed ahead (the decision path), instead of `specs`."""
    if terms is None:
        terms = [(name, *t) for name, t in penalty_terms(specs, config).items()]
    if not terms:
        return set()
    penalties = [fixed + per_token * input_tokens for _, fixed, per_token in terms]
    # Reward at quality 1 below the best reward at quality 0: 1 - p < -min(p), i.e. p > 1 + min(p).
    bar = 1.0 + min(penalties)
    return {name for (name, _, _), p in zip(terms, penalties) if p > bar}


def reward_span(specs: Iterable[ModelSpec], config: RewardConfig, reference_input_tokens: int = 500) -> float:
    """The width of the reward range that is mapped onto VW's [0, 1] cost (see module docstring)."""
    specs = list(specs)
    w = config.weights
    if not specs:
        return 1.0
    c_ref = max(estimated_cost(s, reference_input_tokens, config.default_output_tokens) for s in specs)
    l_ref = max(estimated_latency(s, config.default_output_tokens) for s in specs)
    return 1.0 + w.cost_weight * c_ref / w.cost_scale + w.latency_weight * l_ref / w.latency_scale


def to_vw_cost(reward: float, span: float) -> float:
    """The reward as VW's cost in [0, 1]; a NaN (never from validated input) counts as the worst."""
    cost = (1.0 - reward) / span
    if cost != cost:
        return 1.0
    return 0.0 if cost < 0.0 else 1.0 if cost > 1.0 else cost
