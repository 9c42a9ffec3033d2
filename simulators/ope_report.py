"""`banditroute ope`'s output: a guidance line, one recommended estimate per candidate, then every estimate.

Pure: strings and dicts from `ope.assess`'s results; the command prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from banditroute.estimators import Estimate
from simulators.ope import LOW_SUPPORT, MIN_ESS, NO_SUPPORT, RECOMMENDED, Assessment

GUIDANCE = (
    f"Read the first table: one estimate per candidate policy, chosen by a fixed rule: DR with a normal interval"
    f" where the log supports the candidate with an effective sample size (ESS) of at least {MIN_ESS:.0f} rounds,"
    f" else SNIPS with a bootstrap interval, flagged low support; `covers` is the share of the candidate's choices"
    f" the logged policy could have made. Every estimator follows for reference."
)
_FLAGS = {LOW_SUPPORT: "low support", NO_SUPPORT: "no support"}
FULL_COVERAGE = 0.995  # below: say how much of the candidate's choices the log could not have made


def note(a: Assessment) -> str:
    parts = [_FLAGS[a.support]] if a.support in _FLAGS else []
    if a.coverage < FULL_COVERAGE and a.support != NO_SUPPORT:
        covered = f"{100 * a.coverage:.0f}%"
        rest = f"{100 * (1 - a.coverage):.0f}%"
        parts.append(
            f"covers {covered}: DR's reward model stands in for the other {rest}"
            if a.support == RECOMMENDED
            else f"covers {covered}: SNIPS sees only those choices"
        )
    return "; ".join(parts)


def _interval(low: float | None, high: float | None) -> str:
    return f"[{low:8.4f}, {high:8.4f}]" if low is not None and high is not None else " " * 20


def text(assessments: Sequence[Assessment], logged: Estimate, n_rounds: int, cost_weight: float) -> str:
    level = "95%"  # the command's alpha is 0.05
    width = max([len("candidate"), *(len(a.target) for a in assessments)])
    lines = [
        GUIDANCE,
        "",
        f"{n_rounds} logged rounds, cost_weight {cost_weight:g}. Mean reward per candidate; the logged policy's own"
        f" mean: {logged.value:.4f} [{logged.ci_low:.4f}, {logged.ci_high:.4f}]",
        f"{'candidate':{width}s} {'estimate':>9s} {level + ' CI':>21s}  {'estimator':18s} {'ESS':>8s} {'n':>7s}  note",
    ]
    for a in assessments:
        s = a.summary()
        value = f"{s['value']:9.4f}" if s["value"] is not None else f"{'–':>9s}"
        method = f"{s['estimator']} ({s['interval']})" if s["estimator"] else "–"
        lines.append(
            f"{a.target:{width}s} {value} {_interval(s['ci_low'], s['ci_high'])}  {method:18s} {a.ess:8.1f}"
            f" {a.n:7d}  {note(a)}".rstrip()
        )
    lines += ["", "All estimates (normal intervals):"]
    lines.append(f"{'candidate':{width}s} {'estimator':12s} {'value':>9s} {level + ' CI':>21s} {'n':>7s}")
    for a in assessments:
        for est in a.estimates:
            lines.append(
                f"{a.target:{width}s} {est.method:12s} {est.value:9.4f} {_interval(est.ci_low, est.ci_high)} {est.n:7d}"
            )
    return "\n".join(lines)


def as_json(assessments: Sequence[Assessment], logged: Estimate, n_rounds: int, cost_weight: float) -> dict[str, Any]:
    return {
        "guidance": GUIDANCE,
        "rounds": n_rounds,
        "cost_weight": cost_weight,
        "logged_policy": {"value": logged.value, "ci_low": logged.ci_low, "ci_high": logged.ci_high, "n": logged.n},
        "recommended": [{**a.summary(), "note": note(a)} for a in assessments],
        "estimates": [row for a in assessments for row in a.rows()],
    }
