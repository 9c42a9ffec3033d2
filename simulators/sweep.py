"""Choosing the cost-quality weight: run the online router once per weight, next to the baselines.

`run_pass` is one router's pass through a world (cold, after evals, or frozen from a step on);
`scored_rows` puts it next to the baselines over the same steps. `banditroute sweep` writes those
rows as `frontier.csv` (one row per cost_weight x policy, `write_csv`) and `frontier.png`
(`plot`: quality against cost per 1k requests: the router's curve, the single models and their
upper hull). `upper_hull` and `hull_quality_at` say what mixing single models at random can reach,
the bar a router must clear to add value.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from banditroute.config import Config
from banditroute.router import Router
from banditroute.types import EvalExample, Outcome, RewardWeights, WarmStart
from simulators.baselines import Outcomes, Skyline, fixed_baselines
from simulators.datasets import load_dataset
from simulators.simulate import FeedbackModel, last80, new_router, simulate, summarize
from simulators.worlds import DatasetWorld, World

CSV_COLUMNS = (
    "cost_weight",
    "policy",
    "mean_quality",
    "mean_cost_usd",
    "mean_reward",
    "cost_per_1k_usd",
    "explored_share",
)


@dataclass(frozen=True)
class Pass:
    """One router's pass through a world: the router as it ended, one record per routed step, its warm start."""

    router: Router
    records: list[dict[str, Any]]
    warm: WarmStart | None


def run_pass(
    world: World,
    config: Config,
    feedback: FeedbackModel = FeedbackModel(),
    seed: int = 0,
    *,
    evals: int = 0,
    freeze_at: int | None = None,
    progress: bool = False,
    sink: Any = None,
) -> Pass:
    """One seeded pass of a router through `world`.

    `evals`: the first that many steps are not routed but given to `Router.warmstart` with every model's
    outcome (evals before routing); routing starts after them. `freeze_at`: the router learns nothing
    decided from that step on (see `simulate`).
    """
    router = new_router(world, config, sink=sink)
    warm = router.warmstart(eval_examples(world, range(evals))) if evals else None
    steps: Iterable[dict[str, Any]] = simulate(router, world, feedback, seed=seed, start=evals, freeze_at=freeze_at)
    if progress:
        steps = _progress(steps, len(world) - evals, f"{world.name} cost_weight={config.reward.cost_weight:g}")
    return Pass(router, list(steps), warm)


def eval_examples(world: World, steps: Iterable[int]) -> list[EvalExample]:
    """The prompts at `steps` with every model's outcome on them, as `Router.warmstart` takes them."""
    examples = []
    for step in steps:
        req = world.request(step)
        outcomes = {}
        for spec in world.models(step):
            r = world.outcome(step, spec.name)
            outcomes[spec.name] = Outcome(
                quality=r.quality,
                latency_ms=r.latency_ms,
                cost_usd=r.cost_usd,
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
                error=r.error,
            )
        examples.append(EvalExample(req.query, req.metadata, outcomes))
    return examples


def run_router(
    world: World,
    config: Config,
    feedback: FeedbackModel = FeedbackModel(),
    seed: int = 0,
    progress: bool = False,
    sink: Any = None,
) -> dict[str, Any]:
    """One seeded pass of a cold-start router through `world`; returns its summary metrics."""
    records = run_pass(world, config, feedback, seed, progress=progress, sink=sink).records
    summary = summarize(records, config.reward.weights)
    summary["records"] = records
    return summary


def scored_rows(
    router: dict[str, Any],
    outcomes: Outcomes,
    weights: RewardWeights,
    world: World,
    sky: Skyline | None,
    start: int = 0,
) -> list[dict[str, Any]]:
    """A router's summary (`summarize`) next to the baselines scored over the same steps, from `start` on."""
    rows = [
        {
            "policy": "router",
            "mean_quality": router["mean_quality"],
            "mean_cost_usd": router["mean_cost_usd"],
            "mean_reward": router["mean_reward"],
            "explored_share": router["explored_share"],
        }
    ]
    rows += fixed_baselines(outcomes, weights, world, start)
    if sky is not None:
        rows.append(sky.row(weights, start))
    return rows


def at_weight(weight: float, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` as frontier rows: tagged with their cost weight, with the cost per 1k requests."""
    return [{"cost_weight": weight, **row, "cost_per_1k_usd": row["mean_cost_usd"] * 1000} for row in rows]


def target_rows(
    world: World, config: Config, targets: Iterable[tuple[str, float]], feedback: FeedbackModel, seed: int
) -> list[dict[str, Any]]:
    """One controlled router per target (`("target_cost_per_1k" | "target_quality", value)`), as frontier rows
    next to the fixed weights': policy `target_cost_per_1k=X`, cost_weight the geometric mean of the weights it
    set; quality, spend and reward over the last 80 % of the stream (`last80`), rewards at the config's weight."""
    rows = []
    for key, value in targets:
        records = run_pass(world, config.with_overrides(reward={key: value}), feedback, seed).records
        held = last80(records, config.reward.weights)
        tail = [r["cost_weight"] for r in records[len(records) // 5 :] if r["model"] is not None]
        rows.append(
            {
                "cost_weight": float(np.exp(np.mean(np.log(tail)))),
                "policy": f"{key}={value:g}",
                "mean_quality": held["mean_quality"],
                "mean_cost_usd": held["cost_per_1k_usd"] / 1000,
                "mean_reward": held["mean_reward"],
                "cost_per_1k_usd": held["cost_per_1k_usd"],
                "explored_share": float("nan"),
            }
        )
    return rows


def dataset_world(
    path: str | Path, *, seed: int = 0, with_task: bool = False, limit: int | None = None, sample: int | None = None
) -> DatasetWorld:
    return DatasetWorld(load_dataset(path, limit=limit), seed=seed, with_task=with_task, sample=sample)


def write_csv(rows: Iterable[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def upper_hull(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, quality) points reachable by mixing models at random, upper and non-dominated part.

    Starts at the cheapest point and climbs the upper concave hull up to the best quality.
    """
    pts = sorted(set(points))
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:  # hull[-1] is under the chord
                hull.pop()
            else:
                break
        hull.append(p)
    best = max(range(len(hull)), key=lambda i: hull[i][1])
    return hull[: best + 1]


def hull_quality_at(hull: Sequence[tuple[float, float]], cost: float) -> float:
    """The quality the hull reaches at `cost` (flat beyond the ends)."""
    xs = [p[0] for p in hull]
    ys = [p[1] for p in hull]
    return float(np.interp(cost, xs, ys))


def hull_at_router(rows: Iterable[dict[str, Any]]) -> tuple[float, float]:
    """(hull quality at the router's cost, router quality minus it) for one weight's frontier rows."""
    at = {r["policy"]: r for r in rows}
    router = at["router"]
    hull = upper_hull((r["mean_cost_usd"], r["mean_quality"]) for p, r in at.items() if p.startswith("model:"))
    hull_q = hull_quality_at(hull, router["mean_cost_usd"])
    return hull_q, router["mean_quality"] - hull_q


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    first = rows[0]["cost_weight"]
    singles = [r for r in rows if r["policy"].startswith("model:") and r["cost_weight"] == first]
    points = [(r["cost_per_1k_usd"], r["mean_quality"]) for r in singles]
    for r in singles:
        ax.scatter(r["cost_per_1k_usd"], r["mean_quality"], color="grey", s=25, zorder=3)
        ax.annotate(
            r["policy"].removeprefix("model:").split("/")[-1],
            (r["cost_per_1k_usd"], r["mean_quality"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
            color="dimgrey",
        )
    hull = upper_hull(points)
    ax.plot([p[0] for p in hull], [p[1] for p in hull], "--", color="grey", label="single models, upper hull")
    for policy, style in (("router", "o-"), ("skyline", "s:")):
        pts = sorted((r["cost_per_1k_usd"], r["mean_quality"], r["cost_weight"]) for r in rows if r["policy"] == policy)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=policy, zorder=4)
            if policy == "router":
                for x, y, w in pts:
                    ax.annotate(f"λ={w:g}", (x, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
    held = [r for r in rows if r["policy"].startswith("target_")]
    for r in held:
        ax.scatter(r["cost_per_1k_usd"], r["mean_quality"], marker="*", s=90, color="crimson", zorder=5)
        ax.annotate(
            r["policy"],
            (r["cost_per_1k_usd"], r["mean_quality"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    oracle = [r for r in rows if r["policy"] == "oracle"]
    ax.plot(
        [r["cost_per_1k_usd"] for r in oracle],
        [r["mean_quality"] for r in oracle],
        "^",
        color="green",
        label="oracle",
        alpha=0.6,
    )
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlabel("cost per 1,000 requests (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _progress(steps: Iterable[dict[str, Any]], total: int, label: str) -> Iterable[dict[str, Any]]:
    from tqdm import tqdm

    return tqdm(steps, total=total, desc=label, file=sys.stderr, mininterval=1.0, leave=False)
