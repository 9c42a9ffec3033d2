"""The reward formula, shared by the service, the simulators and the estimators. Pure.

    reward = quality - cost_weight * cost_usd / cost_scale - latency_weight * latency_ms / latency_scale

`cost_weight` is the cost-quality knob: how many quality points one `cost_scale` of spend is worth
(with the default `cost_scale` of 0.001 USD, the cost term counts USD per 1,000 requests).

Vowpal Wabbit minimises a cost in [0, 1], so the reward is mapped affinely onto that range:

    vw_cost = clip((1 - reward) / span, 0, 1),  span = 1 + penalty_ref

`reward.span` chooses the reference penalty (cost and latency terms, without quality):

- "request" (default): the smallest estimated penalty among the models allowed for *this* request
  (its input tokens, `default_output_tokens` out). The floor `1 - span` is then the reward of the
  least-penalised allowed model at zero quality, so whatever is clipped is dominated by that model
  and the argmax is kept; the span depends only on the request (the context), so the map is affine
  per context and the policy still optimises the same objective. Quality differences are not
  diluted by the price of an expensive model that is never worth it at a high cost weight.
- "catalog": the largest penalty of any catalog model on a reference request of 500 input tokens;
  nothing is clipped unless it is costlier than that, but at a high cost weight a quality point
  becomes a small fraction of VW's [0, 1] cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from banditroute.config import RewardConfig
from banditroute.types import ModelSpec, Outcome, RewardWeights

# Quality given to a call that failed and never got a quality of its own: it delivered nothing.
FAILURE_QUALITY = 0.0


@dataclass(frozen=True, slots=True)
class Reward:
    value: float
    quality: float
    cost_usd: float
    latency_ms: float
    defaulted: tuple[str, ...]  # parts that were filled in because they never arrived


def combine(quality: float, cost_usd: float, latency_ms: float, weights: RewardWeights) -> float:
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


def reward_span(specs: Iterable[ModelSpec], config: RewardConfig, reference_input_tokens: int = 500) -> float:
    """The width of the reward range that is mapped onto VW's [0, 1] cost (see module docstring)."""
    specs = list(specs)
    w = config.weights
    if not specs:
        return 1.0
    c_ref = max(estimated_cost(s, reference_input_tokens, config.default_output_tokens) for s in specs)
    l_ref = max(estimated_latency(s, config.default_output_tokens) for s in specs)
    return 1.0 + w.cost_weight * c_ref / w.cost_scale + w.latency_weight * l_ref / w.latency_scale


def request_span(specs: Iterable[ModelSpec], input_tokens: int, config: RewardConfig) -> float:
    """The span of one request under `reward.span = "request"` (see module docstring)."""
    w = config.weights
    out = config.default_output_tokens
    least = min((w.cost_weight * estimated_cost(s, input_tokens, out) / w.cost_scale
                 + w.latency_weight * estimated_latency(s, out) / w.latency_scale for s in specs), default=0.0)
    return 1.0 + least


def decision_span(specs: Iterable[ModelSpec], input_tokens: int, config: RewardConfig, catalog_span: float) -> float:
    """The span that maps one decision's reward, per `config.span`."""
    return request_span(specs, input_tokens, config) if config.span == "request" else catalog_span


def to_vw_cost(reward: float, span: float) -> float:
    cost = (1.0 - reward) / span
    return 0.0 if cost < 0.0 else 1.0 if cost > 1.0 else cost
