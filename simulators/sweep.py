"""Choosing the cost-quality weight: run the online router once per weight, next to the baselines.

`sweep` writes `frontier.csv` (one row per cost_weight x policy) and `frontier.png` (quality against
cost per 1k requests: the router's curve, the single models and their upper hull). `upper_hull`
and `hull_quality_at` say what mixing single models at random can reach, the bar a router must
clear to add value.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from banditroute.config import Config, load_config
from simulators.baselines import Outcomes, Skyline, fixed_baselines, full_outcomes
from simulators.datasets import load_dataset
from simulators.simulate import FeedbackModel, new_router, simulate, summarize
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
class SweepResult:
    rows: list[dict[str, Any]]
    dataset: str
    n: int


def run_router(
    world: World,
    config: Config,
    feedback: FeedbackModel = FeedbackModel(),
    seed: int = 0,
    progress: bool = False,
    sink: Any = None,
) -> dict[str, Any]:
    """One seeded pass of a cold-start router through `world`; returns its summary metrics."""
    router = new_router(world, config, sink=sink)
    steps: Iterable[dict[str, Any]] = simulate(router, world, feedback, seed=seed)
    if progress:
        steps = _progress(steps, len(world), f"{world.name} cost_weight={config.reward.cost_weight:g}")
    records = list(steps)
    summary = summarize(records, config.reward.weights)
    summary["records"] = records
    return summary


def sweep(
    world: World,
    weights: Sequence[float],
    *,
    config: Config | None = None,
    seed: int = 0,
    feedback: FeedbackModel = FeedbackModel(),
    progress: bool = False,
    skyline: bool = True,
) -> SweepResult:
    config = config or load_config()
    outcomes: Outcomes = full_outcomes(world)
    sky = Skyline(world, outcomes, seed=seed) if skyline else None
    rows: list[dict[str, Any]] = []
    for weight in weights:
        cfg = config.with_overrides(reward={"cost_weight": float(weight)})
        w = cfg.reward.weights
        summary = run_router(world, cfg, feedback, seed, progress)
        rows.append(
            {
                "cost_weight": weight,
                "policy": "router",
                "mean_quality": summary["mean_quality"],
                "mean_cost_usd": summary["mean_cost_usd"],
                "mean_reward": summary["mean_reward"],
                "explored_share": summary["explored_share"],
            }
        )
        baseline_rows = fixed_baselines(outcomes, w, world)
        if sky is not None:
            baseline_rows.append(sky.row(w))
        for row in baseline_rows:
            rows.append({"cost_weight": weight, **row})
    for row in rows:
        row["cost_per_1k_usd"] = row["mean_cost_usd"] * 1000
    return SweepResult(rows, world.name, len(world))


def dataset_world(
    path: str | Path, *, seed: int = 0, with_task: bool = False, limit: int | None = None
) -> DatasetWorld:
    return DatasetWorld(load_dataset(path, limit=limit), seed=seed, with_task=with_task)


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
