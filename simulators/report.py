"""The routing-quality report: does the router add value over every single model, at every weight?

For each data set and cost weight, `quality_rows` reads a sweep's rows and tells:
- the router's mean reward against the best fixed model in hindsight (`beats_best_fixed`);
- where the router's (cost, quality) point lies against the upper hull of the single models'
  points, which mixing two models at random reaches (`hull_margin`: router quality minus the hull's
  quality at the router's cost; `on_hull` when it is not below, up to `HULL_TOLERANCE`);
- the share of the gap between best fixed and the oracle that the router recovers.

`markdown_table` renders those rows for the README; `run` drives the sweeps behind `make quality`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from simulators.sweep import hull_quality_at, upper_hull

# The hull test compares two means over the same stream; a difference below this is rounding, not
# a miss (a tenth of a quality point on a 0..100 scale).
HULL_TOLERANCE = 1e-3

REPORT_COLUMNS = (
    "dataset",
    "cost_weight",
    "router_reward",
    "best_fixed_reward",
    "best_fixed_model",
    "skyline_reward",
    "oracle_reward",
    "router_quality",
    "router_cost_per_1k_usd",
    "hull_quality",
    "hull_margin",
    "beats_best_fixed",
    "on_hull",
    "gap_recovered",
)


def quality_rows(rows: Sequence[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    """One report row per cost weight of a sweep's rows (see `simulators.sweep.sweep`)."""
    out = []
    for weight in sorted({r["cost_weight"] for r in rows}):
        at = {r["policy"]: r for r in rows if r["cost_weight"] == weight}
        router, best, oracle = at["router"], at["best_fixed"], at["oracle"]
        hull = upper_hull((r["mean_cost_usd"], r["mean_quality"]) for p, r in at.items() if p.startswith("model:"))
        hull_q = hull_quality_at(hull, router["mean_cost_usd"])
        gap = oracle["mean_reward"] - best["mean_reward"]
        out.append(
            {
                "dataset": dataset,
                "cost_weight": weight,
                "router_reward": router["mean_reward"],
                "best_fixed_reward": best["mean_reward"],
                "best_fixed_model": best.get("model", ""),
                "skyline_reward": at["skyline"]["mean_reward"] if "skyline" in at else None,
                "oracle_reward": oracle["mean_reward"],
                "router_quality": router["mean_quality"],
                "router_cost_per_1k_usd": router["mean_cost_usd"] * 1000,
                "hull_quality": hull_q,
                "hull_margin": router["mean_quality"] - hull_q,
                "beats_best_fixed": router["mean_reward"] >= best["mean_reward"],
                "on_hull": router["mean_quality"] - hull_q >= -HULL_TOLERANCE,
                "gap_recovered": (router["mean_reward"] - best["mean_reward"]) / gap if gap > 0 else None,
            }
        )
    return out


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: Iterable[dict[str, Any]]) -> str:
    """The README table: one line per (data set, cost weight)."""
    lines = [
        "| data set | cost_weight | router | best fixed (model) | skyline | oracle | router quality | "
        "router $/1k | hull quality at router cost | ≥ best fixed | on/above hull | gap recovered |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|:-:|:-:|---:|",
    ]
    for r in rows:
        gap = "–" if r["gap_recovered"] is None else f"{100 * r['gap_recovered']:.0f}%"
        lines.append(
            f"| {r['dataset']} | {r['cost_weight']:g} | {_num(r['router_reward'])} | "
            f"{_num(r['best_fixed_reward'])} ({r['best_fixed_model']}) | {_num(r['skyline_reward'])} | "
            f"{_num(r['oracle_reward'])} | {_num(r['router_quality'])} | {_num(r['router_cost_per_1k_usd'], 4)} | "
            f"{_num(r['hull_quality'])} ({r['hull_margin']:+.3f}) | {'yes' if r['beats_best_fixed'] else 'NO'} | "
            f"{'yes' if r['on_hull'] else 'NO'} | {gap} |"
        )
    return "\n".join(lines) + "\n"


def run(
    data: Path,
    sets: Sequence[str],
    weights: Sequence[float],
    *,
    seed: int,
    out: Path,
    with_task: bool,
    config_path: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Sweep every set, write `<set>.csv`, `<set>.png` and `quality.md` under `out`; return the report rows."""
    from banditroute.config import load_config
    from simulators.sweep import dataset_world, plot, sweep, write_csv

    config = load_config(config_path)
    out.mkdir(parents=True, exist_ok=True)
    report: list[dict[str, Any]] = []
    view = "with task label" if with_task else "text only"
    for name in sets:
        world = dataset_world(data / name, seed=seed, with_task=with_task, limit=limit)
        result = sweep(world, weights, config=config, seed=seed, progress=progress)
        write_csv(result.rows, out / f"{name}.csv")
        plot(result.rows, out / f"{name}.png", f"{result.dataset} ({view}): {result.n} prompts, seed {seed}")
        report += quality_rows(result.rows, result.dataset)
    (out / "quality.md").write_text(markdown_table(report), encoding="utf-8")
    return report
