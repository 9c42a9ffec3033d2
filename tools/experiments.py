"""Configuration experiments behind README "Routing quality": many seeds, no skyline, one log line per run.

    python -m tools.experiments run NAME '{"policy": {"gamma_scale": 100}}' --seeds 0,1,2 [--sets a,b]
                                     [--with-task] [--gamma-per-span] [--data DIR] [--log FILE]
    python -m tools.experiments summarize [--log FILE]

`run` replays each set once per seed and cost weight (0.03, 0.1, 0.3, 1) with the bundled config plus
the JSON overrides (sections and keys as in the TOML), prints router − best fixed, the hull margin and
the logpai gap recovered per (set, weight), and appends the report rows to the log (JSON lines).
`--gamma-per-span` multiplies `policy.gamma_scale` by the reward span of each (set, weight)
(`reward.reward_span`), i.e. SquareCB's greediness measured in reward units, not VW-cost units.
`summarize` prints the log as a markdown table, one line per run (the last run of each name and view
wins).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from banditroute import reward as reward_formula
from banditroute.config import load_config
from simulators.baselines import fixed_baselines, full_outcomes
from simulators.datasets import load_dataset
from simulators.report import quality_rows
from simulators.sweep import run_router
from simulators.worlds import DatasetWorld

WEIGHTS = (0.03, 0.1, 0.3, 1.0)
DEFAULT_LOG = Path("docs/quality/experiments.jsonl")


def run(
    name: str,
    overrides: dict[str, Any],
    seeds: list[int],
    sets: list[str],
    data: Path,
    with_task: bool,
    log: Path,
    gamma_per_span: bool = False,
) -> list[dict[str, Any]]:
    base = load_config(None)
    if overrides:
        base = base.with_overrides(**overrides)
    rows: list[dict[str, Any]] = []
    for s in sets:
        dataset = load_dataset(data / s)
        for seed in seeds:
            world = DatasetWorld(dataset, seed=seed, with_task=with_task)
            outcomes = full_outcomes(world)
            for w in WEIGHTS:
                cfg = base.with_overrides(reward={"cost_weight": w})
                if gamma_per_span:
                    span = reward_formula.reward_span(world.models(0), cfg.reward)
                    cfg = cfg.with_overrides(policy={"gamma_scale": cfg.policy.gamma_scale * span})
                t = time.perf_counter()
                summary = run_router(world, cfg, seed=seed)
                rate = len(world) / (time.perf_counter() - t)
                sweep_rows = [
                    {
                        "cost_weight": w,
                        "policy": "router",
                        "mean_quality": summary["mean_quality"],
                        "mean_cost_usd": summary["mean_cost_usd"],
                        "mean_reward": summary["mean_reward"],
                    }
                ]
                sweep_rows += [{"cost_weight": w, **r} for r in fixed_baselines(outcomes, cfg.reward.weights, world)]
                row = quality_rows(sweep_rows, s)[0]
                row.update(seed=seed, decisions_per_s=rate, explored=summary["explored_share"])
                rows.append(row)
    if gamma_per_span:
        overrides = {**overrides, "gamma_per_span": True}  # recorded with the run; not a config key
    print(f"== {name} {json.dumps(overrides)} seeds={seeds} task={with_task}")
    for s in sets:
        for w in WEIGHTS:
            rs = [r for r in rows if r["dataset"] == s and r["cost_weight"] == w]
            diff = [r["router_reward"] - r["best_fixed_reward"] for r in rs]
            hull = [r["hull_margin"] for r in rs]
            ok = all(r["beats_best_fixed"] and r["on_hull"] for r in rs)
            print(
                f"{s:12s} w={w:<5g} router-best {np.mean(diff):+.4f} (min {min(diff):+.4f}) hull {np.mean(hull):+.4f} "
                f"(min {min(hull):+.4f}) gap {np.mean([r['gap_recovered'] for r in rs]):5.0%} "
                f"explored {np.mean([r['explored'] for r in rs]):.2f} {'ok' if ok else 'FAIL'}"
            )
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(json.dumps({"name": name, "over": overrides, "task": with_task, "rows": rows}) + "\n")
    return rows


def summarize(log: Path) -> str:
    runs: OrderedDict[tuple[str, bool], dict[str, Any]] = OrderedDict()
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        key = (entry["name"], entry["task"])
        runs.pop(key, None)
        runs[key] = entry
    lines = [
        "| run | overrides | seeds | (set, weight, seed) failing | router − best fixed: all | routerbench | "
        "llmrouter | logpai | logpai gap recovered |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, _), e in runs.items():
        rows = e["rows"]

        def diff(s: str | None) -> str:
            d = [r["router_reward"] - r["best_fixed_reward"] for r in rows if s is None or r["dataset"] == s]
            return f"{np.mean(d):+.4f}" if d else "–"

        gap = [r["gap_recovered"] for r in rows if r["dataset"] == "logpai"]
        fails = sum(not (r["beats_best_fixed"] and r["on_hull"]) for r in rows)
        lines.append(
            f"| {name}{' (task)' if e['task'] else ''} | `{json.dumps(e['over'])}` | "
            f"{len({r['seed'] for r in rows})} | {fails}/{len(rows)} | {diff(None)} | {diff('routerbench')} | "
            f"{diff('llmrouter')} | {diff('logpai')} | {f'{100 * np.mean(gap):.0f}%' if gap else '–'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("name")
    r.add_argument("overrides", nargs="?", default="{}")
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--sets", default="routerbench,llmrouter,logpai")
    r.add_argument("--data", default="data")
    r.add_argument("--with-task", action="store_true")
    r.add_argument("--gamma-per-span", action="store_true")
    r.add_argument("--log", type=Path, default=DEFAULT_LOG)
    s = sub.add_parser("summarize")
    s.add_argument("--log", type=Path, default=DEFAULT_LOG)
    args = p.parse_args()
    if args.command == "run":
        run(
            args.name,
            json.loads(args.overrides),
            [int(x) for x in args.seeds.split(",")],
            args.sets.split(","),
            Path(args.data),
            args.with_task,
            args.log,
            args.gamma_per_span,
        )
    else:
        print(summarize(args.log), end="")


if __name__ == "__main__":
    main()
