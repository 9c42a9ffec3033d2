"""Off-policy estimators: formulas on hand-computed rounds, and statistical behaviour on a synthetic
contextual bandit whose target-policy value is known exactly."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from banditroute.estimators import Estimate, clipped_ips, dm, dr, effective_sample_size, evaluate_all, ips, snips

REPETITIONS = 20
ROUNDS = 2000
MIN_COVERED = 16  # of 20 at a nominal 95%: P(fewer) < 2% for a calibrated interval


@dataclass(frozen=True)
class Problem:
    """Contexts x ~ context_prob, action a ~ policy(· | x), reward ~ Bernoulli(mean_reward[x, a])."""

    context_prob: np.ndarray
    mean_reward: np.ndarray
    logging: np.ndarray
    target: np.ndarray

    @property
    def true_value(self) -> float:
        """The target policy's exact expected reward: sum_x P(x) sum_a pi(a | x) mu(x, a)."""
        return float(self.context_prob @ (self.target * self.mean_reward).sum(axis=1))


def make_problem(rare_best: bool = False) -> Problem:
    mean_reward = np.array([[0.2, 0.5, 0.8, 0.4], [0.7, 0.3, 0.1, 0.6], [0.5, 0.9, 0.4, 0.2]])
    if rare_best:
        logging = np.array([[0.49, 0.49, 0.01, 0.01], [0.01, 0.49, 0.49, 0.01], [0.49, 0.01, 0.49, 0.01]])
    else:
        logging = np.array([[0.4, 0.3, 0.1, 0.2], [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]])
    greedy = np.eye(4)[mean_reward.argmax(axis=1)]
    target = 0.9 * greedy + 0.1 / 4
    return Problem(np.array([0.5, 0.3, 0.2]), mean_reward, logging, target)


def simulate(
    problem: Problem, seed: int, *, n: int = ROUNDS, q_noise: float = 0.02, q_bias: float = 0.0
) -> dict[str, np.ndarray]:
    """n logged rounds, with a reward model qhat = mu + bias + noise(sd q_noise) per (x, a)."""
    rng = np.random.default_rng(seed)
    contexts = rng.choice(len(problem.context_prob), size=n, p=problem.context_prob)
    cumulative = problem.logging[contexts].cumsum(axis=1)
    actions = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), problem.logging.shape[1] - 1)
    rewards = (rng.random(n) < problem.mean_reward[contexts, actions]).astype(float)
    q_hat = problem.mean_reward + q_bias + rng.normal(0.0, q_noise, size=problem.mean_reward.shape)
    return {
        "rewards": rewards,
        "logged_prob": problem.logging[contexts, actions],
        "target_prob": problem.target[contexts, actions],
        "q_hat_logged": q_hat[contexts, actions],
        "q_hat_target": (problem.target[contexts] * q_hat[contexts]).sum(axis=1),
    }


def run(method: Callable[..., Estimate], data: dict[str, np.ndarray], **kwargs: Any) -> Estimate:
    if method is dm:
        return dm(data["q_hat_target"], **kwargs)
    if method is dr:
        return dr(**data, **kwargs)
    return method(data["rewards"], data["logged_prob"], data["target_prob"], **kwargs)


def repeat(method: Callable[..., Estimate], problem: Problem, **kwargs: Any) -> list[Estimate]:
    sim_kwargs = {k: kwargs.pop(k) for k in ("q_noise", "q_bias") if k in kwargs}
    return [run(method, simulate(problem, seed, **sim_kwargs), **kwargs) for seed in range(REPETITIONS)]


def covered(estimates: list[Estimate], truth: float) -> int:
    return sum(e.ci_low <= truth <= e.ci_high for e in estimates)


# formulas on rounds small enough to check by hand

ROUNDS_BY_HAND = {"rewards": [1.0, 0.0, 1.0], "logged_prob": [0.5, 0.25, 1.0], "target_prob": [1.0, 1.0, 0.5]}


def test_ips_is_the_mean_of_weighted_rewards() -> None:
    assert ips(**ROUNDS_BY_HAND).value == pytest.approx((2 * 1 + 4 * 0 + 0.5 * 1) / 3)


def test_clipped_ips_caps_each_weight() -> None:
    assert clipped_ips(**ROUNDS_BY_HAND, clip=1.0).value == pytest.approx((1 + 0 + 0.5) / 3)
    assert clipped_ips(**ROUNDS_BY_HAND, clip=100.0).value == pytest.approx(ips(**ROUNDS_BY_HAND).value)


def test_snips_normalises_by_the_sum_of_weights() -> None:
    assert snips(**ROUNDS_BY_HAND).value == pytest.approx((2 + 0.5) / (2 + 4 + 0.5))


def test_dm_and_dr_formulas() -> None:
    q_logged, q_target = [0.5, 0.5, 0.0], [0.6, 0.2, 0.4]
    assert dm(q_target).value == pytest.approx(0.4)
    expected = (0.6 + 2 * (1 - 0.5) + 0.2 + 4 * (0 - 0.5) + 0.4 + 0.5 * (1 - 0.0)) / 3
    assert dr(**ROUNDS_BY_HAND, q_hat_logged=q_logged, q_hat_target=q_target).value == pytest.approx(expected)


def test_dr_equals_dm_when_the_reward_model_fits_the_logged_rewards_exactly() -> None:
    data = simulate(make_problem(), seed=1)
    data["q_hat_logged"] = data["rewards"]
    assert dr(**data).value == pytest.approx(dm(data["q_hat_target"]).value)


def test_on_policy_estimates_are_the_sample_mean_with_a_normal_interval() -> None:
    rewards = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    prob = np.full(6, 0.3)
    half_width = NormalDist().inv_cdf(0.975) * rewards.std(ddof=1) / math.sqrt(6)
    for method in (ips, snips):
        est = method(rewards, prob, prob)
        assert est.value == pytest.approx(rewards.mean()) and est.n == 6
        assert (est.ci_low, est.ci_high) == pytest.approx((rewards.mean() - half_width, rewards.mean() + half_width))


def test_snips_interval_is_the_delta_method() -> None:
    data = simulate(make_problem(), seed=2, n=500)
    w = data["target_prob"] / data["logged_prob"]
    value = (w * data["rewards"]).sum() / w.sum()
    expected = np.std(w * (data["rewards"] - value), ddof=1) / w.mean() / math.sqrt(500)
    assert snips(data["rewards"], data["logged_prob"], data["target_prob"]).stderr == pytest.approx(expected)


def test_alpha_sets_the_interval_width() -> None:
    data = simulate(make_problem(), seed=3)
    wide, narrow = run(ips, data, alpha=0.01), run(ips, data, alpha=0.2)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


# statistical behaviour on the synthetic problem


@pytest.mark.parametrize("method", [ips, snips, dr])
@pytest.mark.parametrize("interval", ["normal", "bootstrap"])
def test_unbiased_estimators_cover_the_true_value(method: Callable[..., Estimate], interval: str) -> None:
    problem = make_problem()
    estimates = repeat(method, problem, ci=interval, n_boot=400, rng=7)
    values = np.array([e.value for e in estimates])
    assert covered(estimates, problem.true_value) >= MIN_COVERED
    standard_error_of_the_mean = np.mean([e.stderr for e in estimates]) / math.sqrt(REPETITIONS)
    assert abs(values.mean() - problem.true_value) < 3 * standard_error_of_the_mean


def test_a_biased_reward_model_makes_dm_miss_but_not_dr() -> None:
    problem = make_problem()
    assert covered(repeat(dm, problem, q_bias=0.1), problem.true_value) <= 2
    assert covered(repeat(dr, problem, q_bias=0.1), problem.true_value) >= MIN_COVERED


def test_dr_with_a_good_reward_model_varies_less_than_ips() -> None:
    problem = make_problem()
    runs = {m.__name__: repeat(m, problem) for m in (ips, dr)}
    spread = {name: np.std([e.value for e in estimates]) for name, estimates in runs.items()}
    stderr = {name: np.mean([e.stderr for e in estimates]) for name, estimates in runs.items()}
    assert spread["dr"] < 0.5 * spread["ips"]
    assert stderr["dr"] < 0.6 * stderr["ips"], "Bernoulli reward noise bounds how far DR can shrink it"


def test_clipping_heavy_weights_biases_ips_downward() -> None:
    problem = make_problem(rare_best=True)
    data = [simulate(problem, seed) for seed in range(REPETITIONS)]
    clipped = np.array([run(clipped_ips, d, clip=5.0).value for d in data])
    plain = np.array([run(ips, d).value for d in data])
    assert (clipped <= plain).all(), "with rewards >= 0, clipping can only lower each weighted reward"
    assert clipped.mean() < problem.true_value - 0.2
    assert abs(plain.mean() - problem.true_value) < 0.05
    assert clipped.std() < plain.std()


def test_bootstrap_agrees_with_the_normal_interval_on_a_large_sample() -> None:
    data = simulate(make_problem(), seed=4, n=5000)
    for method in (ips, snips, dr):
        normal, boot = run(method, data), run(method, data, ci="bootstrap", n_boot=2000, rng=0)
        assert boot.value == normal.value
        assert boot.stderr == pytest.approx(normal.stderr, rel=0.1)
        assert boot.ci_high - boot.ci_low == pytest.approx(normal.ci_high - normal.ci_low, rel=0.15)


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    data = simulate(make_problem(), seed=5, n=300)
    first = run(snips, data, ci="bootstrap", rng=np.random.default_rng(11))
    assert run(snips, data, ci="bootstrap", rng=11) == first
    assert run(snips, data, ci="bootstrap", rng=12) != first
    assert run(snips, data, ci="bootstrap") == run(snips, data, ci="bootstrap"), "no rng means a fixed seed"


# edge cases and validation


def test_one_round_has_an_unbounded_normal_interval() -> None:
    est = ips([1.0], [0.5], [0.5])
    assert est.value == 1.0 and est.n == 1
    assert (est.ci_low, est.ci_high, est.stderr) == (-math.inf, math.inf, math.inf)


def test_snips_is_undefined_when_the_target_never_takes_a_logged_action() -> None:
    est = snips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0])
    assert math.isnan(est.value) and math.isnan(est.ci_low) and est.n == 2
    assert ips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0]).value == 0.0
    assert math.isnan(snips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0], ci="bootstrap").value)


@pytest.mark.parametrize(
    ("weights", "expected"), [([2.0] * 5, 5.0), ([0.0, 3.0, 0.0], 1.0), ([0.0, 0.0], 0.0), ([1.0, 3.0], 16 / 10)]
)
def test_effective_sample_size(weights: list[float], expected: float) -> None:
    assert effective_sample_size(weights) == pytest.approx(expected)


def test_evaluate_all_runs_dm_and_dr_only_with_a_reward_model() -> None:
    data = simulate(make_problem(), seed=6, n=300)
    logged = (data["rewards"], data["logged_prob"], data["target_prob"])
    assert [e.method for e in evaluate_all(*logged)] == ["ips", "clipped_ips", "snips"]
    assert [e.method for e in evaluate_all(*logged, q_hat_target=data["q_hat_target"])] == [
        "ips",
        "clipped_ips",
        "snips",
        "dm",
    ]
    every = evaluate_all(*logged, q_hat_logged=data["q_hat_logged"], q_hat_target=data["q_hat_target"], alpha=0.1)
    assert [e.method for e in every] == ["ips", "clipped_ips", "snips", "dm", "dr"]
    assert every[4] == dr(**data, alpha=0.1)


GOOD = {"rewards": [1.0, 0.0], "logged_prob": [0.5, 0.5], "target_prob": [1.0, 0.0]}
Q_HATS = {"q_hat_logged": [0.5, 0.5], "q_hat_target": [0.5, 0.5]}

INVALID = [
    (ips, {**GOOD, "rewards": [1.0]}, r"target_prob has length 2, expected 1|logged_prob has length 2, expected 1"),
    (ips, {"rewards": [], "logged_prob": [], "target_prob": []}, r"rewards is empty: need at least 1 round"),
    (ips, {**GOOD, "logged_prob": [0.0, 0.5]}, r"logged_prob must lie in \(0, 1\]"),
    (snips, {**GOOD, "logged_prob": [0.5, 1.5]}, r"logged_prob must lie in \(0, 1\]"),
    (ips, {**GOOD, "target_prob": [-0.1, 0.5]}, r"target_prob must lie in \[0, 1\]"),
    (clipped_ips, {**GOOD, "target_prob": [1.1, 0.5]}, r"target_prob must lie in \[0, 1\]"),
    (ips, {**GOOD, "rewards": [math.nan, 0.0]}, r"rewards holds non-finite values"),
    (snips, {**GOOD, "rewards": [math.inf, 0.0]}, r"rewards holds non-finite values"),
    (ips, {**GOOD, "rewards": [[1.0, 0.0]]}, r"rewards must be one-dimensional"),
    (ips, {**GOOD, "alpha": 0.0}, r"alpha must lie in \(0, 1\)"),
    (ips, {**GOOD, "alpha": 1.0}, r"alpha must lie in \(0, 1\)"),
    (ips, {**GOOD, "ci": "wald"}, r"ci must be 'normal' or 'bootstrap'"),
    (ips, {**GOOD, "ci": "bootstrap", "n_boot": 1}, r"n_boot must be >= 2"),
    (clipped_ips, {**GOOD, "clip": 0.0}, r"clip must be > 0"),
    (dm, {"q_hat_target": [0.5, math.nan]}, r"q_hat_target holds non-finite values"),
    (dm, {"q_hat_target": []}, r"q_hat_target is empty"),
    (dr, {**GOOD, **Q_HATS, "q_hat_logged": [0.5]}, r"q_hat_logged has length 1, expected 2"),
    (dr, {**GOOD, **Q_HATS, "q_hat_target": [0.5, math.inf]}, r"q_hat_target holds non-finite values"),
    (evaluate_all, {**GOOD, "q_hat_target": [0.5]}, r"q_hat_target has length 1, expected 2"),
    (effective_sample_size, {"weights": [1.0, -1.0]}, r"weights must be >= 0"),
    (effective_sample_size, {"weights": [1.0, math.nan]}, r"weights holds non-finite values"),
]


@pytest.mark.parametrize(
    ("function", "kwargs", "message"), INVALID, ids=[f"{f.__name__}-{i}" for i, (f, _, _) in enumerate(INVALID)]
)
def test_invalid_input_is_rejected(function: Callable[..., Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        function(**kwargs)
