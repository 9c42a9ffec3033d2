"""Issue 17's "Done when", measured: budget and quality targets against fixed cost weights (`make budget`).

    .venv/bin/python -m tools.budget --data data --sets routerbench,llmrouter,logpai --seeds 0,1,2 --jobs 2 \
        [--limit N] --out docs/budget-results.md --plot docs/budget.png

Per (set, seed), one cold pass each (seeded order, immediate feedback), every figure over the last 80 % of
the stream unless said otherwise:

- the fixed-weight sweep: one router per weight of `--grid`, its spend per 1k and quality;
- budgets: B = the spend of the fixed weight 0.1 (and 0.3); the controlled router (`target_cost_per_1k = B`)
  must spend within ±5 % of B, at a quality no worse than the best grid weight spending at most B − 0.005;
- quality targets: Q = the quality of the fixed weight 0.1 (and 0.3); the controlled router
  (`target_quality = Q`) must hold Q ± 0.01, at a spend at most 1.05 × that of the cheapest grid weight
  reaching Q;
- shifts (`--world price`, `--world task-shift`): B = the fixed weight's spend from 20 % of the stream to
  the shift (what a team tuned the weight to); after the shift + 10 % of the stream, the controlled
  router's spend must be within ±5 % of B; the fixed weight's is shown beside it.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from banditroute.config import Config, load_config
from simulators.baselines import fixed_baselines, full_outcomes
from simulators.commands import perturb
from simulators.simulate import last80
from simulators.sweep import dataset_world, run_pass
from simulators.worlds import World

GRID = "0.01,0.02,0.03,0.05,0.1,0.15,0.2,0.3,0.5,1,2,3"
AT = (0.1, 0.3)  # the cost weights
SPEND_TOL, QUALITY_SLACK, QUALITY_TOL, COST_SLACK = 0.05, 0.005, 0.01, 0.05


def spend_per_1k(records: list[dict[str, Any]], start: int, stop: int | None = None) -> float:
    cost = [r["cost_usd"] for r in records[start:stop] if r["model"] is not None]
    return float(np.mean(cost)) * 1000 if cost else float("nan")


def shift_step(world: World) -> int:
    """The step a world changes at: its change step, or where a task mix shift starts its second half."""
    at = getattr(world, "change_step", None)
    if at is not None:
        return int(at)
    tasks = [world.request(s).task for s in range(len(world))]
    last = {t: s for s, t in enumerate(tasks)}
    reach = 0
    for s, t in enumerate(tasks):
        if s > 0 and reach < s:
            return s
        reach = max(reach, last[t])
    return len(world) // 2


def _run(world: World, config: Config, seed: int, **reward: float) -> list[dict[str, Any]]:
    return run_pass(world, config.with_overrides(reward=reward), seed=seed).records


def measure_one(data: str, name: str, seed: int, limit: int | None, grid: list[float]) -> dict[str, Any]:
    config = load_config(None)
    weights = config.reward.weights  # rewards scored at the default weight (0.1)
    base = dataset_world(Path(data) / name, seed=seed, limit=limit)
    out: dict[str, Any] = {"set": name, "seed": seed, "n": len(base), "sweep": {}, "budget": [], "quality": []}
    runs = {}
    for w in grid:
        runs[w] = _run(base, config, seed, cost_weight=w)
        out["sweep"][w] = last80(runs[w], weights)
    points = list(out["sweep"].values())
    for w in AT:
        b = out["sweep"][w]["cost_per_1k_usd"]
        got = last80(_run(base, config, seed, target_cost_per_1k=b), weights)
        affordable = [p["mean_quality"] for p in points if p["cost_per_1k_usd"] <= b]
        out["budget"].append({"at": w, "target": b, **got, "best_fixed_quality": max(affordable)})
        q = out["sweep"][w]["mean_quality"]
        got = last80(_run(base, config, seed, target_quality=q), weights)
        reaching = [p["cost_per_1k_usd"] for p in points if p["mean_quality"] >= q]
        out["quality"].append({"at": w, "target": q, **got, "cheapest_fixed_cost": min(reaching)})
    out["shift"] = []
    rows = fixed_baselines(full_outcomes(base), weights, base)
    best = next(r["model"] for r in rows if r["policy"] == "best_fixed")
    for kind in ("price", "task-shift"):
        world = perturb(base, kind, best, best)
        n, at = len(world), shift_step(world)
        for w in AT:
            fixed = _run(world, config, seed, cost_weight=w)
            b = spend_per_1k(fixed, n // 5, at)
            ctrl = _run(world, config, seed, target_cost_per_1k=b)
            after = at + n // 10
            out["shift"].append(
                {
                    "world": kind,
                    "at": w,
                    "target": b,
                    "shift": at,
                    "controlled": spend_per_1k(ctrl, after) / b,
                    "fixed": spend_per_1k(fixed, after) / b,
                }
            )
            if name == "routerbench" and seed == 0 and kind == "price" and w == AT[0]:
                out["trace"] = {"fixed": fixed, "controlled": ctrl, "shift": at, "target": b, "weight": w}
    return out


def _ok(flag: bool) -> str:
    return "yes" if flag else "**no**"


def render(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Budget and quality targets: the measurement",
        "",
        f'Made by `{command}` (issue 17\'s "Done when"; the method is in [budget.md](budget.md)). One cold',
        "pass per (set, seed, setting), immediate feedback; spend in USD per 1,000 requests and quality over the",
        "last 80 % of the stream. Fixed weights swept: " + ", ".join(f"{w:g}" for w in results[0]["sweep"]) + ".",
        "",
        "## Budgets",
        "",
        "B = the spend of the fixed weight (0.1, 0.3); best fixed = the best quality of a swept weight spending ≤ B.",
        "",
        "| set | seed | weight | B | spend | spend / B | within ±5 % | quality | best fixed | ≥ best fixed − 0.005 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tally = {"spend": [0, 0], "quality": [0, 0], "q_hold": [0, 0], "q_cost": [0, 0], "shift": [0, 0], "fixed": [0, 0]}
    for r in results:
        for b in r["budget"]:
            ratio = b["cost_per_1k_usd"] / b["target"]
            spend_ok = abs(ratio - 1) <= SPEND_TOL
            q_ok = b["mean_quality"] >= b["best_fixed_quality"] - QUALITY_SLACK
            tally["spend"][0] += spend_ok
            tally["quality"][0] += q_ok
            tally["spend"][1] += 1
            tally["quality"][1] += 1
            lines.append(
                f"| {r['set']} | {r['seed']} | {b['at']:g} | {b['target']:.4f} | {b['cost_per_1k_usd']:.4f} | "
                f"{ratio:.3f} | {_ok(spend_ok)} | {b['mean_quality']:.4f} | {b['best_fixed_quality']:.4f} | "
                f"{_ok(q_ok)} |"
            )
    lines += [
        "",
        "## Quality targets",
        "",
        "Q = the quality of the fixed weight (0.1, 0.3); cheapest fixed = the least spend of a swept weight",
        "reaching Q.",
        "",
        "| set | seed | weight | Q | quality | within ±0.01 | spend | cheapest fixed | ≤ cheapest × 1.05 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for q in r["quality"]:
            hold = abs(q["mean_quality"] - q["target"]) <= QUALITY_TOL
            cheap = q["cost_per_1k_usd"] <= q["cheapest_fixed_cost"] * (1 + COST_SLACK)
            tally["q_hold"][0] += hold
            tally["q_cost"][0] += cheap
            tally["q_hold"][1] += 1
            tally["q_cost"][1] += 1
            lines.append(
                f"| {r['set']} | {r['seed']} | {q['at']:g} | {q['target']:.4f} | {q['mean_quality']:.4f} | "
                f"{_ok(hold)} | {q['cost_per_1k_usd']:.4f} | {q['cheapest_fixed_cost']:.4f} | {_ok(cheap)} |"
            )
    lines += [
        "",
        "## Shifts mid-stream",
        "",
        "B = the fixed weight's spend from 20 % of the stream to the shift; the ratios are the spend from the",
        "shift + 10 % of the stream to the end, over B: the controlled router's, and the fixed weight's (drifting).",
        "",
        "| set | seed | world | weight | B | shift at | controlled / B | within ±5 % | fixed weight / B |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for s in r["shift"]:
            ok = abs(s["controlled"] - 1) <= SPEND_TOL
            tally["shift"][0] += ok
            tally["shift"][1] += 1
            tally["fixed"][0] += abs(s["fixed"] - 1) <= SPEND_TOL
            tally["fixed"][1] += 1
            lines.append(
                f"| {r['set']} | {r['seed']} | {s['world']} | {s['at']:g} | {s['target']:.4f} | {s['shift']} | "
                f"{s['controlled']:.3f} | {_ok(ok)} | {s['fixed']:.3f} |"
            )
    t = {k: f"{a}/{n}" for k, (a, n) in tally.items()}
    lines += [
        "",
        "## Summary",
        "",
        f"- budget spend within ±5 %: {t['spend']}; quality ≥ best fixed spending no more − 0.005: {t['quality']}",
        f"- quality target held within ±0.01: {t['q_hold']}; spend ≤ cheapest fixed reaching it × 1.05: {t['q_cost']}",
        f"- after a shift, spend within ±5 %: controlled {t['shift']}, fixed weight {t['fixed']}",
        "",
    ]
    return "\n".join(lines)


def plot(trace: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 100
    kernel = np.ones(width) / width
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for label, records in (("fixed cost_weight", trace["fixed"]), ("target_cost_per_1k", trace["controlled"])):
        cost = np.array([r["cost_usd"] * 1000 for r in records])
        top.plot(np.arange(width - 1, len(cost)), np.convolve(cost, kernel, mode="valid"), label=label, lw=1)
        bottom.plot([r["cost_weight"] for r in records], label=label, lw=1)
    top.axhline(trace["target"], color="k", ls="--", lw=0.8, label="budget")
    for ax in (top, bottom):
        ax.axvline(trace["shift"], color="grey", ls=":", lw=0.8)
    top.set_ylabel(f"USD per 1k requests\n(mean of the last {width})")
    bottom.set_ylabel("cost_weight")
    bottom.set_yscale("log")
    bottom.set_xlabel("request")
    top.set_title(f"routerbench, seed 0: its best model costs 10x from request {trace['shift']}")
    top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--sets", default="routerbench,llmrouter,logpai")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--grid", default=GRID, help="the fixed cost weights swept")
    ap.add_argument("--limit", type=int, help="the first N prompts of each file only (development)")
    ap.add_argument("--jobs", type=int, default=2, help="(set, seed) runs in parallel")
    ap.add_argument("--out", default="docs/budget-results.md")
    ap.add_argument("--plot", default="docs/budget.png")
    args = ap.parse_args()
    grid = sorted({float(w) for w in args.grid.split(",")} | set(AT))
    jobs = [(s, int(seed)) for s in args.sets.split(",") for seed in args.seeds.split(",")]
    began = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(measure_one, args.data, s, seed, args.limit, grid) for s, seed in jobs]
        results = [f.result() for f in futures]
    command = f"python -m tools.budget --data {args.data} --sets {args.sets} --seeds {args.seeds}"
    if args.limit:
        command += f" --limit {args.limit}"
    if args.grid != GRID:
        command += f" --grid {args.grid}"
    text = render(results, command)
    Path(args.out).write_text(text)
    trace = next((r["trace"] for r in results if "trace" in r), None)
    if trace is not None and args.plot:
        plot(trace, Path(args.plot))
    print(text)
    print(f"wrote {args.out} and {args.plot} in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
