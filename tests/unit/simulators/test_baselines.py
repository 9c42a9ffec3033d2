"""The skyline baseline: a cross-fitted ridge regression that is right where the text tells the task."""

from __future__ import annotations

import numpy as np
import pytest

from banditroute.config import load_config
from simulators.baselines import Skyline, _ridge_loo, fixed_baselines, full_outcomes
from tests.unit.simulators.test_ope import BernoulliTasks


def test_ridge_loo_errors_match_refitting_without_each_row() -> None:
    rng = np.random.default_rng(0)
    for n, d in ((30, 8), (12, 40)):  # the primal and the dual path
        x, y = rng.normal(size=(n, d)), rng.normal(size=(n, 2))
        lam = 0.7
        predicted, chosen = _ridge_loo(x, y, x[:3], (lam,))
        assert chosen.tolist() == [lam, lam]

        def fit(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            xm, ym = x[rows].mean(axis=0), y[rows].mean(axis=0)
            xc = x[rows] - xm
            beta = np.linalg.solve(xc.T @ xc + lam * np.eye(d), xc.T @ (y[rows] - ym))
            return beta, ym - xm @ beta

        beta, intercept = fit(np.arange(n))
        assert predicted == pytest.approx(x[:3] @ beta + intercept, abs=1e-8)
        # the closed-form LOO choice equals the brute-force one over a grid
        grid = (0.01, 1.0, 100.0)
        brute = []
        for lam in grid:  # noqa: B007 (fit reads it)
            errs = []
            for i in range(n):
                rows = np.delete(np.arange(n), i)
                b, c = fit(rows)
                errs.append((x[i] @ b + c - y[i]) ** 2)
            brute.append(np.mean(errs, axis=0))
        _, chosen = _ridge_loo(x, y, x[:1], grid)
        assert chosen.tolist() == [grid[k] for k in np.argmin(brute, axis=0)]


def test_skyline_learns_the_task_from_the_text() -> None:
    world = BernoulliTasks(1200, seed=3)
    outcomes = full_outcomes(world)
    weights = load_config().with_overrides(reward={"cost_weight": 0.0}).reward.weights
    rows = {r["policy"]: r for r in fixed_baselines(outcomes, weights, world)}
    sky = Skyline(world, outcomes, seed=0).row(weights)
    # per task, the best model is worth 0.8..0.9 against 0.6 for the best single model
    assert sky["mean_reward"] > rows["best_fixed"]["mean_reward"] + 0.15
    assert sky["mean_reward"] <= rows["oracle"]["mean_reward"]
