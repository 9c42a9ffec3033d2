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

Both come from `banditroute.estimators` (logged probability 1) with its normal 95% interval; read
them together with the match rate: the lower it is, the less of the bandit's policy the baseline's
log covers.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from banditroute.estimators import Estimate, ips, snips


def _json(estimate: Estimate) -> dict[str, Any] | None:
    if not math.isfinite(estimate.value):  # SNIPS when the bandit never gives the baseline any weight
        return None

    def finite(x: float) -> float | None:  # no interval from a single round
        return x if math.isfinite(x) else None

    return {
        "method": estimate.method,
        "value": estimate.value,
        "ci_low": finite(estimate.ci_low),
        "ci_high": finite(estimate.ci_high),
        "n": estimate.n,
        "stderr": finite(estimate.stderr),
    }


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
        est_ips = est_snips = None
        if n:
            logged = [1.0] * n  # the baseline is served deterministically
            est_ips = _json(ips(self.rewards, logged, self.weights))
            est_snips = _json(snips(self.rewards, logged, self.weights))
        return {
            "baseline": baseline,
            "decisions": self.decisions,
            "matched": self.matched,
            "match_rate": self.matched / self.decisions if self.decisions else None,
            "learned": n,
            "baseline_value": sum(self.rewards) / n if n else None,
            "bandit_ips": est_ips,
            "bandit_snips": est_snips,
        }
