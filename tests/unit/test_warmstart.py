"""Evals before routing: a warm start learns every model's outcome and names the best model on the evals."""

from __future__ import annotations

from banditroute.config import load_config
from banditroute.router import Router
from banditroute.types import EvalExample, Outcome


def test_warmstart_learns_every_outcome_and_picks_the_best_model_on_the_evals() -> None:
    router = Router(load_config().with_overrides(reward={"cost_weight": 0.0}))
    names = router.catalog.names
    strong = names[-1]
    examples = [
        EvalExample(f"question number {i}", {}, {m: Outcome(quality=0.9 if m == strong else 0.3) for m in names})
        for i in range(40)
    ]
    report = router.warmstart(examples)
    assert (report.examples, report.updates) == (40, 40 * len(names))
    assert report.baseline == strong == router.baseline_model
    assert report.mean_reward[strong] > max(v for m, v in report.mean_reward.items() if m != strong)
    # the policy learned it: the strong model is the most likely choice on a prompt like the evals'
    d = router.route("question number 7", now=1.0)
    assert max(zip(d.pmf, d.models, strict=True))[1] == strong


def test_a_model_missing_from_some_evals_is_not_the_baseline() -> None:
    router = Router(load_config().with_overrides(reward={"cost_weight": 0.0}))
    a, b = router.catalog.names[:2]
    examples = [
        EvalExample("q", {}, {a: Outcome(quality=0.5), **({b: Outcome(quality=1.0)} if i else {})}) for i in range(3)
    ]
    assert router.warmstart(examples).baseline == a
