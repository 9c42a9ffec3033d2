"""Off-policy estimators of a target policy's mean reward from logged bandit rounds. Pure numpy.

Notation, round i of n: the logging policy chose action a_i with probability p_i =
`logged_prob[i]` and observed reward r_i; the target policy would choose that same action with
probability pi_i = `target_prob[i]` (zero is allowed: the target may never take it); the
importance weight is w_i = pi_i / p_i. A reward model qhat(x, a) is optional: `q_hat_logged[i]` =
qhat(x_i, a_i) and `q_hat_target[i]` = sum_a pi(a | x_i) qhat(x_i, a).

Every estimator shares one seam: it builds a per-round numerator vector u_i (and, for the
self-normalised one, a per-round normaliser d_i, else d_i = 1), the estimate is
V = sum u_i / sum d_i, and `_estimate` turns those vectors into an interval:
- "normal" (default): V ± z_(1 - alpha/2) · se, with se = sd(u_i - V d_i) / (mean(d) sqrt n),
  i.e. the plain standard error of a mean when d = 1 and the delta method for the ratio otherwise;
- "bootstrap": resample rounds with replacement `n_boot` times from a seeded numpy Generator,
  recompute V on each resample and take the alpha/2 and 1 - alpha/2 percentiles (se is the sd of
  the resampled values).

>>> est = ips([1.0, 0.0], [0.5, 0.5], [1.0, 0.0])
>>> est.method, est.value, est.n
('ips', 1.0, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal, TypedDict

import numpy as np

ArrayLike = Sequence[float] | np.ndarray
Interval = Literal["normal", "bootstrap"]
DEFAULT_SEED = 0
BOOTSTRAP_CELLS_PER_BATCH = 2_000_000  # bounds memory: n_boot × n resampled indices, batched
# Below this a logged probability is a logging bug, not exploration (the router's policies never go
# near it), and its importance weight would overflow the sums.
MIN_LOGGED_PROB = 1e-12


class _Options(TypedDict):
    """The confidence-interval options every estimator takes, passed on by `evaluate_all`."""

    alpha: float
    ci: Interval
    n_boot: int
    rng: np.random.Generator


@dataclass(frozen=True)
class Estimate:
    """One estimator's value with its (1 - alpha) confidence interval over n rounds."""

    method: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    stderr: float


def ips(
    rewards: ArrayLike,
    logged_prob: ArrayLike,
    target_prob: ArrayLike,
    *,
    alpha: float = 0.05,
    ci: Interval = "normal",
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> Estimate:
    """Inverse propensity scoring: V = (1/n) sum_i w_i r_i.

    Unbiased when p_i > 0 wherever the target acts; its variance grows with the weights.
    """
    r, p, pi = _rounds(rewards, logged_prob, target_prob)
    return _estimate("ips", pi / p * r, alpha=alpha, ci=ci, n_boot=n_boot, rng=rng)


def clipped_ips(
    rewards: ArrayLike,
    logged_prob: ArrayLike,
    target_prob: ArrayLike,
    *,
    clip: float = 10.0,
    alpha: float = 0.05,
    ci: Interval = "normal",
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> Estimate:
    """Clipped IPS: V = (1/n) sum_i min(w_i, clip) r_i.

    Trades variance for bias: with non-negative rewards it can only under-estimate.
    """
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    r, p, pi = _rounds(rewards, logged_prob, target_prob)
    return _estimate("clipped_ips", np.minimum(pi / p, clip) * r, alpha=alpha, ci=ci, n_boot=n_boot, rng=rng)


def snips(
    rewards: ArrayLike,
    logged_prob: ArrayLike,
    target_prob: ArrayLike,
    *,
    alpha: float = 0.05,
    ci: Interval = "normal",
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> Estimate:
    """Self-normalised IPS: V = sum_i w_i r_i / sum_i w_i.

    Slightly biased, consistent, and far less variable than IPS when weights are uneven; it stays
    within the range of the rewards. Undefined (NaN) when every weight is zero, i.e. the target
    never takes a logged action.
    """
    r, p, pi = _rounds(rewards, logged_prob, target_prob)
    w = pi / p
    # The ratio does not change when every weight is scaled; scaled so the largest is 1, products
    # with subnormal weights (a target probability of 5e-324) cannot underflow to 0 and leave the range.
    top = w.max()
    if top > 0.0:
        w = w / top
    return _estimate("snips", w * r, w, alpha=alpha, ci=ci, n_boot=n_boot, rng=rng)


def dm(
    q_hat_target: ArrayLike,
    *,
    alpha: float = 0.05,
    ci: Interval = "normal",
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> Estimate:
    """Direct method: V = (1/n) sum_i sum_a pi(a | x_i) qhat(x_i, a).

    Low variance but as biased as the reward model; the interval covers context sampling only,
    not the reward model's error.
    """
    (q_target,) = _arrays(q_hat_target=q_hat_target)
    return _estimate("dm", q_target, alpha=alpha, ci=ci, n_boot=n_boot, rng=rng)


def dr(
    rewards: ArrayLike,
    logged_prob: ArrayLike,
    target_prob: ArrayLike,
    q_hat_logged: ArrayLike,
    q_hat_target: ArrayLike,
    *,
    alpha: float = 0.05,
    ci: Interval = "normal",
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> Estimate:
    """Doubly robust: V = (1/n) sum_i [q_hat_target_i + w_i (r_i - q_hat_logged_i)].

    Unbiased if either the propensities or the reward model are right; the better qhat, the
    smaller the weighted residuals and so the variance.
    """
    r, p, pi = _rounds(rewards, logged_prob, target_prob)
    q_logged, q_target = _arrays(q_hat_logged=q_hat_logged, q_hat_target=q_hat_target, length=len(r))
    return _estimate("dr", q_target + pi / p * (r - q_logged), alpha=alpha, ci=ci, n_boot=n_boot, rng=rng)


def effective_sample_size(weights: ArrayLike) -> float:
    """(sum w)^2 / sum w^2: how many equally weighted rounds the weighted sample is worth.

    n when all weights are equal, 1 when one round carries them all, 0 when all are zero.
    """
    (w,) = _arrays(weights=weights)
    if (w < 0).any():
        raise ValueError("weights must be >= 0")
    squares = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / squares if squares > 0 else 0.0


def evaluate_all(
    rewards: ArrayLike,
    logged_prob: ArrayLike,
    target_prob: ArrayLike,
    *,
    q_hat_logged: ArrayLike | None = None,
    q_hat_target: ArrayLike | None = None,
    clip: float = 10.0,
    alpha: float = 0.05,
    ci: Interval = "normal",
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> list[Estimate]:
    """IPS, clipped IPS and SNIPS; DM when `q_hat_target` is given; DR when both q_hats are."""
    common: _Options = {"alpha": alpha, "ci": ci, "n_boot": n_boot, "rng": _generator(rng)}
    out = [
        ips(rewards, logged_prob, target_prob, **common),
        clipped_ips(rewards, logged_prob, target_prob, clip=clip, **common),
        snips(rewards, logged_prob, target_prob, **common),
    ]
    given = {name: q for name, q in (("q_hat_logged", q_hat_logged), ("q_hat_target", q_hat_target)) if q is not None}
    if given:
        _arrays(length=out[0].n, **given)
    if q_hat_target is not None:
        out.append(dm(q_hat_target, **common))
        if q_hat_logged is not None:
            out.append(dr(rewards, logged_prob, target_prob, q_hat_logged, q_hat_target, **common))
    return out


def _rounds(
    rewards: ArrayLike, logged_prob: ArrayLike, target_prob: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, p, pi = _arrays(rewards=rewards, logged_prob=logged_prob, target_prob=target_prob)
    if ((p <= 0) | (p > 1)).any():
        raise ValueError("logged_prob must lie in (0, 1]: a logged action had a positive probability")
    if (p < MIN_LOGGED_PROB).any():
        raise ValueError(f"logged_prob below {MIN_LOGGED_PROB:g}: the importance weights would overflow")
    if ((pi < 0) | (pi > 1)).any():
        raise ValueError("target_prob must lie in [0, 1]")
    return r, p, pi


def _arrays(*, length: int | None = None, **named: ArrayLike) -> list[np.ndarray]:
    """Named inputs as 1-d float arrays of one common, non-zero length, all finite."""
    out = []
    for name, values in named.items():
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
        if len(array) == 0:
            raise ValueError(f"{name} is empty: need at least 1 round")
        if length is not None and len(array) != length:
            raise ValueError(f"{name} has length {len(array)}, expected {length} (same length as rewards)")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds non-finite values (NaN or inf)")
        length = len(array)
        out.append(array)
    return out


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A Generator from a seed or a Generator; None means a fixed seed, so intervals are reproducible."""
    return np.random.default_rng(DEFAULT_SEED if rng is None else rng)


def _estimate(
    method: str,
    numerator: np.ndarray,
    normaliser: np.ndarray | None = None,
    *,
    alpha: float,
    ci: Interval,
    n_boot: int,
    rng: np.random.Generator | int | None,
) -> Estimate:
    """The shared seam: per-round vectors -> V = sum u / sum d -> interval (see the module docstring)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if ci not in ("normal", "bootstrap"):
        raise ValueError(f"ci must be 'normal' or 'bootstrap', got {ci!r}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    d = np.ones_like(numerator) if normaliser is None else normaliser
    n = len(numerator)
    total = float(d.sum())
    if total <= 0:
        return Estimate(method, math.nan, math.nan, math.nan, n, math.nan)
    value = float(numerator.sum()) / total
    if ci == "bootstrap":
        low, high, stderr = _bootstrap(numerator, d, alpha, n_boot, _generator(rng))
        return Estimate(method, value, low, high, n, stderr)
    if n == 1:
        return Estimate(method, value, -math.inf, math.inf, n, math.inf)
    stderr = float(np.std(numerator - value * d, ddof=1)) / (total / n) / math.sqrt(n)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return Estimate(method, value, value - z * stderr, value + z * stderr, n, stderr)


def _bootstrap(
    numerator: np.ndarray, normaliser: np.ndarray, alpha: float, n_boot: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Percentile interval and sd of V over resampled rounds; resamples with sum d = 0 are dropped."""
    n = len(numerator)
    batch = max(1, BOOTSTRAP_CELLS_PER_BATCH // n)
    values = []
    for start in range(0, n_boot, batch):
        rows = rng.integers(0, n, size=(min(batch, n_boot - start), n))
        sums_u, sums_d = numerator[rows].sum(axis=1), normaliser[rows].sum(axis=1)
        defined = sums_d > 0
        values.append(sums_u[defined] / sums_d[defined])
    resampled = np.concatenate(values)
    if len(resampled) < 2:
        return math.nan, math.nan, math.nan
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), float(np.std(resampled, ddof=1))
