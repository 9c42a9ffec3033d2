"""Shadow (apprentice) mode bookkeeping: how often the bandit agrees with the served baseline, and
an off-policy estimate of the bandit's value from the baseline's outcomes. Pure.

The baseline is served deterministically, so every logged event has logging probability 1 on the
served model and 0 on the others. The estimates below weigh each outcome by the bandit's own
probability of that model, w = pi_bandit(baseline | x) / 1:

    IPS   = (1/n) sum_i w_i r_i                  (unbiased only where the bandit stays on the baseline;
                                                  otherwise it omits the value of the bandit's other picks,
                                                  which no baseline event can show)
    SNIPS = sum_i w_i r_i / sum_i w_i            (the mean reward on the events the bandit would also
                                                  route to the baseline, weighted by how surely)

Both come with a normal-approximation 95% interval; read them together with the match rate:
the lower it is, the less of the bandit's policy the baseline's log covers.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Estimate:
    method: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    stderr: float

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "n": self.n, "stderr": self.stderr}


def ips(rewards: array, weights: array) -> Estimate | None:
    n = len(rewards)
    if n == 0:
        return None
    terms = [w * r for w, r in zip(weights, rewards)]
    mean = sum(terms) / n
    var = sum((t - mean) ** 2 for t in terms) / (n - 1) if n > 1 else 0.0
    se = math.sqrt(var / n)
    return Estimate("ips", mean, mean - Z_95 * se, mean + Z_95 * se, n, se)


def snips(rewards: array, weights: array) -> Estimate | None:
    total = sum(weights)
    if not rewards or total <= 0:
        return None
    value = sum(w * r for w, r in zip(weights, rewards)) / total
    se = math.sqrt(sum((w * (r - value)) ** 2 for w, r in zip(weights, rewards))) / total  # delta method
    return Estimate("snips", value, value - Z_95 * se, value + Z_95 * se, len(rewards), se)


class ShadowTracker:
    """Counts and outcomes of shadow-mode events since the log began (restored from the store)."""

    def __init__(self) -> None:
        self.decisions = 0
        self.matched = 0
        self.rewards = array("d")
        self.weights = array("d")  # the bandit's probability of the served model

    def decided(self, matched: bool) -> None:
        self.decisions += 1
        self.matched += matched

    def learned(self, reward: float, bandit_probability: float) -> None:
        self.rewards.append(reward)
        self.weights.append(bandit_probability)

    def to_json(self, baseline: str | None) -> dict[str, Any]:
        n = len(self.rewards)
        est_ips, est_snips = ips(self.rewards, self.weights), snips(self.rewards, self.weights)
        return {
            "baseline": baseline,
            "decisions": self.decisions,
            "matched": self.matched,
            "match_rate": self.matched / self.decisions if self.decisions else None,
            "learned": n,
            "baseline_value": sum(self.rewards) / n if n else None,
            "bandit_ips": est_ips.to_json() if est_ips else None,
            "bandit_snips": est_snips.to_json() if est_snips else None,
        }
