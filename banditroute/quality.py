"""What the decomposed learner knows about each model without the request: its mean quality (a posterior),
its cost and its latency (running estimates). Pure, no VW, no I/O.

Quality is the only thing learned from bandit feedback. Cost and latency are known before the call from
the catalog and the prompt, and refined from what the calls really cost and took:

- mean quality: a Gaussian posterior with a prior of `PRIOR_WEIGHT` pseudo-observation at `PRIOR_QUALITY`;
  its variance is the model's observed outcome variance, with the same pseudo-observation at 0.25 (the
  largest variance a quality in [0, 1] can have), over n + 1. A model with no evidence is wide, so
  it is explored while it can win; the width shrinks with the evidence, not with a quota.
- cost: catalog input price x the prompt's tokens + the model's running mean of the rest of the observed
  cost (output tokens x price, and any gap between the catalog and the bill), with the catalog's
  `default_output_tokens` estimate as one pseudo-observation. Only what the caller observed counts.
- latency: a running mean of the observed latency, the catalog estimate as one pseudo-observation.

Every estimate is a sum that one `observe_*` call updates in O(1): 7 floats per model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from banditroute.reward import estimated_latency
from banditroute.types import ModelSpec, RewardWeights

PRIOR_QUALITY = 0.5
PRIOR_WEIGHT = 1.0
PRIOR_VARIANCE = 0.25  # a 0/1 quality at 0.5: the widest a quality in [0, 1] can spread


@dataclass(slots=True)
class ModelStats:
    n: float = 0.0  # quality observations
    q_sum: float = 0.0
    q_sq: float = 0.0
    cost_n: float = 0.0  # observed costs
    out_cost_sum: float = 0.0  # observed cost minus its input-token part
    latency_n: float = 0.0
    latency_sum: float = 0.0

    def observe_quality(self, quality: float) -> None:
        self.n += 1.0
        self.q_sum += quality
        self.q_sq += quality * quality

    def observe_cost(self, spec: ModelSpec, input_tokens: int, cost_usd: float) -> None:
        self.cost_n += 1.0
        self.out_cost_sum += cost_usd - spec.input_price * input_tokens / 1e6

    def observe_latency(self, latency_ms: float) -> None:
        self.latency_n += 1.0
        self.latency_sum += latency_ms

    @property
    def mean(self) -> float:
        return (self.q_sum + PRIOR_WEIGHT * PRIOR_QUALITY) / (self.n + PRIOR_WEIGHT)

    @property
    def sd(self) -> float:
        """The posterior standard deviation of the mean quality."""
        spread = self.q_sq - self.q_sum * self.q_sum / self.n if self.n > 0 else 0.0
        variance = (max(spread, 0.0) + PRIOR_WEIGHT * PRIOR_VARIANCE) / (self.n + PRIOR_WEIGHT)
        return math.sqrt(variance / (self.n + PRIOR_WEIGHT))

    def cost(self, spec: ModelSpec, input_tokens: int, default_output_tokens: int) -> float:
        prior = spec.output_price * default_output_tokens / 1e6
        out = (self.out_cost_sum + prior) / (self.cost_n + 1.0)
        return max(spec.input_price * input_tokens / 1e6 + out, 0.0)

    def latency(self, prior_ms: float) -> float:
        return (self.latency_sum + prior_ms) / (self.latency_n + 1.0)

    def to_list(self) -> list[float]:
        return [self.n, self.q_sum, self.q_sq, self.cost_n, self.out_cost_sum, self.latency_n, self.latency_sum]

    @classmethod
    def from_list(cls, values: list[object]) -> ModelStats:
        if len(values) != 7 or not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise ValueError("model stats must be 7 finite numbers")
        return cls(*(float(v) for v in values))  # type: ignore[arg-type]  # checked numbers above


def penalty(
    stats: ModelStats, spec: ModelSpec, input_tokens: int, weights: RewardWeights, default_output_tokens: int
) -> float:
    """The model's estimated cost and latency terms of the reward on this request (reward.combine's
    negative part), from the estimates, at the weights in force."""
    out = weights.cost_weight * stats.cost(spec, input_tokens, default_output_tokens) / weights.cost_scale
    if weights.latency_weight > 0:
        prior = estimated_latency(spec, default_output_tokens)
        out += weights.latency_weight * stats.latency(prior) / weights.latency_scale
    return out


_NONE = ModelStats()  # read only (Learned.get)


@dataclass(slots=True)
class Learned:
    """The decomposed learner's state besides VW's weights: per-model stats, the baseline and the
    conservative budget's running sums (exploration.py). It travels in the policy snapshot."""

    stats: dict[str, ModelStats] = field(default_factory=dict)
    baseline: str | None = None
    served: float = 0.0  # estimated reward of what was served, summed over learned decisions
    base: float = 0.0  # estimated reward the baseline would have got on them

    def get(self, model: str) -> ModelStats:
        """The model's stats to read (a model never observed: the priors), without storing any."""
        return self.stats.get(model, _NONE)

    def of(self, model: str) -> ModelStats:
        """The model's stats to update."""
        stats = self.stats.get(model)
        if stats is None:
            stats = self.stats[model] = ModelStats()
        return stats

    def is_finite(self) -> bool:
        values = [self.served, self.base, *(v for s in self.stats.values() for v in s.to_list())]
        return all(math.isfinite(v) for v in values)

    def to_json(self) -> dict[str, Any]:
        return {
            "stats": {m: self.stats[m].to_list() for m in sorted(self.stats)},
            "baseline": self.baseline,
            "served": self.served,
            "base": self.base,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Learned:
        stats, baseline = obj["stats"], obj["baseline"]
        if not isinstance(stats, dict) or not (baseline is None or isinstance(baseline, str)):
            raise ValueError("stats must be an object and baseline a string or null")
        restored = {str(m): ModelStats.from_list(v) for m, v in stats.items()}
        return cls(restored, baseline, float(obj["served"]), float(obj["base"]))
