"""Online budget and quality targets: the controller that moves `cost_weight` so spend (or quality) tracks
a target while the other is optimised. Pure, no I/O: measurements and time come in as arguments.

The weight is the price of a constraint. Routing at weight w maximises quality − w · cost; the
Lagrangian dual of "maximise quality subject to cost per request ≤ B" is exactly that, with w the
multiplier, and the dual update raises w while the constraint is violated and lowers it while there is
slack. Here it is a proportional-integral update in log space of the weight (the useful weights span
orders of magnitude, and the spend's response to a *relative* change of w is what is roughly constant):

    e_t     = clip(measured / target - 1, -1, 1)            (cost)
    e_t     = clip((measured - target) / QUALITY_UNIT, -1, 1)   (quality)
    I_t     = clamp(I_{t-1} + (n / WINDOW) · e_t / WINDOW, log W_MIN, log W_MAX)
    log w_t = clamp(I_t + GAIN_P · e_t, log W_MIN, log W_MAX)

with `measured` the mean over a sliding window of the last WINDOW measurements (n of them so far).
A positive error (spend above the budget; quality above the target, i.e. money left on the table)
raises the weight. Choices, each by construction rather than fitted to a data set:

- WINDOW = 64 measurements: the mean's relative standard error is about cv / 8 for a per-request cost
  spread cv; the integral averages further over its own time constant, so noise moves the weight by a
  few per cent at most, while the window's lag (about WINDOW / 2) stays short.
- integral gain 1 / WINDOW: a persistent error e moves log w by e per window, so the loop's crossover
  (about |elasticity| / WINDOW per step) stays below the window's lag for elasticities up to ~3; the
  clip at |e| <= 1 caps the speed at a factor e (2.7x) per window, so one outlier window cannot swing
  the weight far. Until the window is full the gain is scaled by its fill (few measurements: small steps).
- GAIN_P = 0: the update is the dual's (sub)gradient step alone. A proportional term acts on the window's
  noise directly: where spend is nearly flat in the weight and then falls off a cliff (one model taking
  over a whole class of requests), it made the weight swing by orders of magnitude.
- QUALITY_UNIT = 0.05: a quality 0.05 off its target counts like spending e (2.7x) the budget, i.e. about
  the quality gap between neighbouring models of a catalog's frontier. The window mean of 64 qualities
  has a standard error of ~0.05 (a 0/1-like quality), so one window's noise is one unit at most, and
  the integral averages it over its time constant.
- bounds [1e-4, 1e4]: at 1e-4 a model costing $10 more per 1,000 requests is worth 0.001 quality points
  (cost is ignored); at 1e4 a $0.0001-per-1k difference outweighs any quality gap (the cheapest model
  wins). The integral is clamped to them (no wind-up while a target cannot be met).

What is measured, and so what happens while feedback is late or missing:

- cost: at decision time, the pmf-weighted *estimated* cost of the models the decision could serve
  (the decomposed learner's per-model cost estimate: catalog price × tokens, refined by observed bills),
  times a calibration ratio ρ = Σ observed cost / Σ estimated cost over the last CALIBRATION learned
  events that reported a cost. The loop needs no feedback to act (a price change in the catalog moves
  the next decision's estimate), and ρ removes what the estimates miss once bills arrive; with no cost
  feedback ρ stays 1 and the controller keeps the catalog-estimated spend on the budget.
- quality: the quality of learned events (only measured ones: a quality filled in by
  `default_quality` is not a measurement). Without feedback nothing is measured, so the weight holds;
  feedback delayed by D events adds D to the loop's lag, which stays stable while D is below a window
  or so.

Start: from the cost weight in force when the target is set (the configured `cost_weight`, or the
weight an operator or the controller left).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

COST, QUALITY = "cost_per_1k", "quality"
WINDOW = 64
GAIN_P = 0.0
ERROR_MAX = 1.0
QUALITY_UNIT = 0.05
CALIBRATION = 256
W_MIN, W_MAX = 1e-4, 1e4
_LOG_MIN, _LOG_MAX = math.log(W_MIN), math.log(W_MAX)


@dataclass(frozen=True, slots=True)
class Target:
    """What the controller holds to: `kind` COST (USD per 1,000 requests) or QUALITY (mean in 0..1)."""

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind == COST:
            ok = math.isfinite(self.value) and self.value > 0
        elif self.kind == QUALITY:
            ok = 0.0 < self.value < 1.0
        else:
            raise ValueError(f"unknown target kind {self.kind!r}")
        if not ok:
            raise ValueError(f"target {self.kind} out of range: {self.value!r}")


def target_of(target_cost_per_1k: float | None, target_quality: float | None) -> Target | None:
    """The `[reward]` target keys as a Target (at most one is set: the config checks it)."""
    if target_cost_per_1k is not None:
        return Target(COST, target_cost_per_1k)
    if target_quality is not None:
        return Target(QUALITY, target_quality)
    return None


class _Window:
    """The mean of the last `size` values, in O(1) per value."""

    __slots__ = ("values", "total")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.total = 0.0

    def add(self, value: float) -> None:
        if len(self.values) == self.values.maxlen:
            self.total -= self.values[0]
        self.values.append(value)
        self.total += value

    def __len__(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return self.total / len(self.values) if self.values else None


class Controller:
    """Sets the cost weight so the measured spend (or quality) tracks `target` (see the module docstring).

    >>> c = Controller(Target(COST, 1.0), cost_weight=0.1, cost_scale=0.001)
    >>> w = [c.decided(0.002) for _ in range(200)][-1]   # spending $2 per 1k against a $1 budget
    >>> w > 0.5
    True
    """

    def __init__(self, target: Target, cost_weight: float, cost_scale: float) -> None:
        self.target = target
        self.cost_scale = cost_scale
        self._weight = min(max(cost_weight, W_MIN), W_MAX)  # exactly the weight it starts from
        self._integral = math.log(self._weight)
        self.spend = _Window(WINDOW)  # estimated cost of the recent decisions
        self.quality = _Window(WINDOW)  # measured quality of the recent learned events
        self._observed = _Window(CALIBRATION)  # observed cost of learned events
        self._estimated = _Window(CALIBRATION)  # their estimated cost
        self.error = 0.0
        self.updates = 0

    @property
    def cost_weight(self) -> float:
        return self._weight

    @property
    def calibration(self) -> float:
        """ρ: observed over estimated cost of the recent learned events (1 until a bill arrived)."""
        est = self._estimated.total
        return self._observed.total / est if len(self._estimated) and est > 0 else 1.0

    def decided(self, expected_cost_usd: float) -> float:
        """A decision's estimated cost (its pmf over its models' cost estimates); the weight to use next.

        Only a cost target acts on it; under a quality target the spend is measured for the state only.
        """
        if math.isfinite(expected_cost_usd) and expected_cost_usd >= 0:
            self.spend.add(expected_cost_usd)
            if self.target.kind == COST:
                self._update(self.spend)
        return self.cost_weight

    def learned(self, quality: float | None, cost_usd: float | None, estimated_cost_usd: float | None) -> float:
        """A learned event: its measured quality (None when not measured), observed and estimated cost."""
        if cost_usd is not None and estimated_cost_usd is not None and math.isfinite(cost_usd) and cost_usd >= 0:
            self._observed.add(cost_usd)
            self._estimated.add(estimated_cost_usd)
        if quality is not None and 0.0 <= quality <= 1.0:
            self.quality.add(quality)
            if self.target.kind == QUALITY:
                self._update(self.quality)
        return self.cost_weight

    def measured_cost_per_1k(self) -> float | None:
        """The recent decisions' spend, USD per 1,000 requests: estimated, calibrated by the bills."""
        mean = self.spend.mean
        return None if mean is None else mean * self.calibration * 1000.0

    def measured_quality(self) -> float | None:
        return self.quality.mean

    def _update(self, window: _Window) -> None:
        if self.target.kind == COST:
            spend = self.measured_cost_per_1k()
            assert spend is not None
            error = spend / self.target.value - 1.0
        else:
            quality = self.measured_quality()
            assert quality is not None
            error = (quality - self.target.value) / QUALITY_UNIT
        error = min(max(error, -ERROR_MAX), ERROR_MAX)
        fill = len(window) / WINDOW
        self._integral = _clamp(self._integral + fill * error / WINDOW)
        self._weight = math.exp(_clamp(self._integral + GAIN_P * error))
        self.error = error
        self.updates += 1

    def state(self) -> dict[str, Any]:
        """For /stats, /metrics and the dashboard."""
        return {
            "kind": self.target.kind,
            "target": self.target.value,
            "cost_weight": self.cost_weight,
            "window": WINDOW,
            "measured_cost_per_1k_usd": self.measured_cost_per_1k(),
            "measured_quality": self.measured_quality(),
            "error": self.error,
            "updates": self.updates,
            "cost_calibration": self.calibration,
        }


def _clamp(log_weight: float) -> float:
    return min(max(log_weight, _LOG_MIN), _LOG_MAX)
