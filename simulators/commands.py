"""The offline commands: `banditroute simulate | sweep | quality | tune | ope` (argument parsing in banditroute.cli)."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from banditroute.config import load_config

if TYPE_CHECKING:  # the simulators load numpy, VW and matplotlib: only when a command runs
    from simulators.simulate import FeedbackModel
    from simulators.worlds import DatasetWorld, World

DEFAULT_WEIGHTS = "0,0.03,0.1,0.3,1,3"
PLOTS = ("matplotlib", "tqdm")  # the sim extra: the frontier plots and the progress bars
PROGRESS = ("tqdm",)


def needs_sim_extra(command: str, modules: tuple[str, ...]) -> None:
    """Stop before any work, in one line, when the base install lacks what `command` needs."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(
            f"banditroute {command}: needs {', '.join(missing)}, which only the sim extra installs:"
            " pip install 'banditroute[sim]'"
        )


def add_world_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="a folder with prompts.jsonl.gz and models.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use the first N prompts of the file only")
    p.add_argument("--with-task", action="store_true", help="pass the data set's task label as metadata.task")
    p.add_argument("--config", help="TOML config (policy, features, reward scales); default: bundled")
    p.add_argument("--quality-delay", type=float, default=0.0, help="mean delay of the quality part, seconds")
    p.add_argument("--missing-quality", type=float, default=0.0, help="share of events that never get a quality")
    p.add_argument("--judge-noise", type=float, default=0.0, help="std of the judge's error")
    p.add_argument("--thumbs", type=float, default=0.0, help="share of events rated by a user's thumbs")


def _feedback(args: argparse.Namespace) -> FeedbackModel:
    from simulators.simulate import FeedbackModel

    return FeedbackModel(
        quality_delay_s=args.quality_delay,
        missing_quality=args.missing_quality,
        judge_noise=args.judge_noise,
        thumbs_fraction=args.thumbs,
    )


def perturb(world: World, spec: str | None, outcomes_best: str, outcomes_top_quality: str) -> World:
    """Apply a named perturbation; each has a documented default placement.

    drift: the best fixed model loses 0.3 quality from the middle on; outage: it fails from 40% to
    60% of the stream; price: it costs 10x from the middle on; new-model: the highest-quality model
    appears at 30%; task-shift: half the tasks first, then the other half.
    """
    from simulators import worlds

    n = len(world)
    if spec in (None, "", "none"):
        return world
    if spec == "drift":
        return worlds.Drift(world, outcomes_best, n // 2, -0.3)
    if spec == "outage":
        return worlds.Outage(world, outcomes_best, int(n * 0.4), int(n * 0.6))
    if spec == "price":
        return worlds.PriceChange(world, outcomes_best, n // 2, 10.0)
    if spec == "new-model":
        return worlds.NewModel(world, outcomes_top_quality, int(n * 0.3))
    if spec == "task-shift":
        return worlds.task_mix_shift(world)
    raise SystemExit(f"banditroute: unknown --world {spec!r}: none, drift, outage, price, new-model, task-shift")


def simulate(args: argparse.Namespace) -> int:
    if args.format == "table":  # the progress bar
        needs_sim_extra("simulate", PROGRESS)
    from simulators.baselines import fixed_baselines, full_outcomes, regret_curve
    from simulators.simulate import rewards_of
    from simulators.sweep import dataset_world, run_router

    config = load_config(args.config).with_overrides(reward={"cost_weight": args.cost_weight})
    weights = config.reward.weights
    base = dataset_world(args.dataset, seed=args.seed, with_task=args.with_task, limit=args.limit)
    base_rows = fixed_baselines(full_outcomes(base), weights, base)
    best = next(r["model"] for r in base_rows if r["policy"] == "best_fixed")
    top = max((r for r in base_rows if r["policy"].startswith("model:")), key=lambda r: r["mean_quality"])
    world = perturb(base, args.world, best, top["policy"].removeprefix("model:"))
    outcomes = full_outcomes(world)
    sink = None
    if args.save_log:
        from banditroute.router import MemorySink

        sink = MemorySink()
    summary = run_router(world, config, _feedback(args), args.seed, progress=args.format == "table", sink=sink)
    records = summary.pop("records")
    if sink is not None:
        _save_log(sink, Path(args.save_log))
    baselines = fixed_baselines(outcomes, weights, world)
    regret = regret_curve(rewards_of(records, weights), outcomes, weights, points=10)
    report = {
        "world": world.name,
        "cost_weight": args.cost_weight,
        "router": summary,
        "baselines": {r["policy"]: {k: v for k, v in r.items() if k != "policy"} for r in baselines},
        "regret": regret,
    }
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        _print_simulation(report)
    return 0


def _save_log(sink: Any, path: Path) -> None:
    """Write a simulator's log in the service's format, so `banditroute ope --log` reads both."""
    from banditroute.store.sqlite import Store

    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    store = Store(path)
    try:
        store.write(sink.decisions, (), sink.learned_rows)
    finally:
        store.close()


def _print_simulation(report: dict[str, Any]) -> None:
    r = report["router"]
    print(f"world {report['world']}  cost_weight {report['cost_weight']:g}  requests {r['n']}")
    print(f"{'policy':44s} {'reward':>8s} {'quality':>8s} {'$/1k req':>9s}")
    print(f"{'router':44s} {r['mean_reward']:8.4f} {r['mean_quality']:8.4f} {r['cost_per_1k_usd']:9.4f}")
    for name, b in report["baselines"].items():
        print(f"{name:44s} {b['mean_reward']:8.4f} {b['mean_quality']:8.4f} {b['mean_cost_usd'] * 1000:9.4f}")
    print(
        f"latency p50 {r['latency_p50_ms']:.0f} ms, p95 {r['latency_p95_ms']:.0f} ms (modelled); "
        f"explored {r['explored_share']:.1%}"
    )
    print(
        "selection share: "
        + ", ".join(f"{m} {s:.1%}" for m, s in sorted(r["selection_share"].items(), key=lambda kv: -kv[1]))
    )
    last = report["regret"][-1]
    print(
        f"cumulative regret at step {last['step']}: vs best fixed {last['regret_vs_best_fixed']:.1f}, "
        f"vs oracle {last['regret_vs_oracle']:.1f}"
    )


def _weights(text: str) -> list[float]:
    import math

    try:
        values = [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise SystemExit(f"banditroute: --weights must be numbers separated by commas, got {text!r}") from None
    if not values or any(not math.isfinite(w) or w < 0 for w in values):
        raise SystemExit("banditroute: --weights must be finite numbers >= 0")
    return values


def _seeds(args: argparse.Namespace) -> list[int]:
    """`--seeds 0,1,2`, else the one `--seed`."""
    if args.seeds is None:
        return [args.seed]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"banditroute: --seeds must be integers separated by commas, got {args.seeds!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit("banditroute: --seeds must name at least one seed, each once")
    return seeds


def _protocols(args: argparse.Namespace) -> list[str]:
    from simulators.protocols import parse_protocols

    try:
        return parse_protocols(args.protocol or ["cold"])
    except ValueError as e:
        raise SystemExit(f"banditroute: --protocol: {e}") from None


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _switch(text: str) -> tuple[float, float]:
    """`--switch-weight 0.1:1`: the cost weight before and after the mid-stream switch."""
    try:
        before, after = (float(w) for w in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BEFORE:AFTER cost weights, got {text!r}") from None
    if min(before, after) < 0:
        raise argparse.ArgumentTypeError("cost weights must be >= 0")
    return before, after


def add_protocol_arguments(p: argparse.ArgumentParser) -> None:
    """The measurement protocols (`simulators.protocols`), shared by `sweep` and `quality`."""
    p.add_argument(
        "--protocol",
        action="append",
        help="cold (default), warm, drift (its four worlds) or drift:<world>; repeatable or comma-separated",
    )
    p.add_argument("--seeds", help="seeds separated by commas, one pass each (overrides --seed)")
    p.add_argument(
        "--evals", type=_positive, default=200, help="warm: the first N prompts of the seeded order are the evals"
    )
    p.add_argument("--no-skyline", action="store_true", help="skip the offline full-information baseline")
    p.add_argument(
        "--sample",
        type=_positive,
        metavar="N",
        help="route only the first N prompts of each seed's order: a random sample (--limit takes the file's first N)",
    )


def _command(name: str, flags: dict[str, object]) -> str:
    """The command line that reproduces a run, for the tables' header."""
    words = ["banditroute", name]
    for flag, value in flags.items():
        if value is True:
            words.append(flag)
        elif value not in (None, False):
            words += [flag, str(value)]
    return " ".join(words)


def run_sweep(args: argparse.Namespace) -> int:
    needs_sim_extra("sweep", PLOTS)
    from simulators.protocols import measure
    from simulators.protocols import write_csv as write_cells
    from simulators.report import render
    from simulators.sweep import dataset_world, plot, write_csv

    config = load_config(args.config)
    protocols, seeds = _protocols(args), _seeds(args)

    def world_of(seed: int) -> DatasetWorld:
        return dataset_world(args.dataset, seed=seed, with_task=args.with_task, limit=args.limit, sample=args.sample)

    m = measure(
        world_of,
        protocols=protocols,
        weights=_weights(args.weights),
        seeds=seeds,
        config=config,
        evals=args.evals,
        feedback=_feedback(args),
        progress=True,
        skyline=not args.no_skyline,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(m.frontier, out / "frontier.csv")
    label = "" if protocols[0] == "cold" else f" ({protocols[0]})"
    plot(m.frontier, out / "frontier.png", f"{m.name}{label}: {m.prompts} prompts, seed {seeds[0]}")
    write_cells(m.cells, out / "quality.csv")
    print(f"wrote {out / 'frontier.csv'}, {out / 'frontier.png'} and {out / 'quality.csv'}")
    if protocols != ["cold"] or len(seeds) > 1:
        print(render(m.cells, (), m.name, "banditroute sweep"), end="")
        return 0
    print(f"{'cost_weight':>11s} {'policy':40s} {'quality':>8s} {'$/1k req':>9s} {'reward':>8s}")
    for row in m.frontier:
        if row["policy"] in ("router", "best_fixed", "skyline", "oracle"):
            name = row["policy"] + (f" ({row['model']})" if "model" in row else "")
            print(
                f"{row['cost_weight']:11g} {name:40s} {row['mean_quality']:8.4f} {row['cost_per_1k_usd']:9.4f} "
                f"{row['mean_reward']:8.4f}"
            )
    return 0


QUALITY_WEIGHTS = "0.03,0.1,0.3,1"


def run_quality(args: argparse.Namespace) -> int:
    needs_sim_extra("quality", PLOTS)
    import time

    from simulators.report import run

    out = Path(args.out)
    protocols, seeds = _protocols(args), _seeds(args)
    command = _command(
        "quality",
        {
            "--data": args.data,
            "--sets": args.sets,
            "--weights": args.weights,
            "--protocol": ",".join(protocols),
            "--seeds": ",".join(map(str, seeds)),
            "--evals": args.evals if "warm" in protocols else None,
            "--limit": args.limit,
            "--sample": args.sample,
            "--with-task": args.with_task,
            "--switch-weight": args.switch_weight and ":".join(f"{w:g}" for w in args.switch_weight),
            "--no-skyline": args.no_skyline,
            "--config": args.config,
        },
    )
    began = time.monotonic()
    report = run(
        Path(args.data),
        args.sets.split(","),
        _weights(args.weights),
        protocols=protocols,
        seeds=seeds,
        evals=args.evals,
        out=out,
        with_task=args.with_task,
        config_path=args.config,
        limit=args.limit,
        sample=args.sample,
        switch=args.switch_weight,
        skyline=not args.no_skyline,
        progress=True,
        command=command,
    )
    print(report.markdown, end="")
    print(f"wrote {out}/quality.csv, {out}/quality.md and a csv and png per set in {time.monotonic() - began:.0f} s")
    return 0


def tune(args: argparse.Namespace) -> int:
    """The weight that meets a target quality (the largest such weight) or a budget (the smallest)."""
    if (args.target_quality is None) == (args.budget is None):
        raise SystemExit("banditroute: give exactly one of --target-quality or --budget")
    from simulators.sweep import dataset_world, run_router

    weights = sorted(_weights(args.weights))
    points = []
    if args.log:
        config = load_config(args.config)
        from simulators import ope

        rounds = ope.rounds_from_store(args.log)
        for w in weights:
            weights_w = config.with_overrides(reward={"cost_weight": w}).reward.weights
            q, c = _retrained_quality_and_cost(rounds, weights_w, config)
            points.append((w, q, c))
    else:
        config = load_config(args.config)
        world = dataset_world(args.dataset, seed=args.seed, with_task=args.with_task, limit=args.limit)
        for w in weights:
            s = run_router(world, config.with_overrides(reward={"cost_weight": w}), seed=args.seed)
            points.append((w, s["mean_quality"], s["cost_per_1k_usd"]))
    for w, q, c in points:
        print(f"cost_weight {w:<8g} quality {q:.4f}  cost per 1k requests ${c:.4f}")
    if args.target_quality is not None:
        ok = [p for p in points if p[1] >= args.target_quality]
        pick = max(ok, key=lambda p: p[0]) if ok else None
        goal = f"quality >= {args.target_quality}"
    else:
        ok = [p for p in points if p[2] <= args.budget]
        pick = min(ok, key=lambda p: p[0]) if ok else None
        goal = f"cost per 1k requests <= ${args.budget}"
    if pick is None:
        print(f"no weight in {weights} meets {goal}")
        return 1
    print(f"cost_weight = {pick[0]:g} meets {goal} (quality {pick[1]:.4f}, ${pick[2]:.4f} per 1k requests)")
    return 0


def _retrained_quality_and_cost(rounds: list, weights: Any, config: Any) -> tuple[float, float]:
    """SNIPS estimates of quality and cost of the policy retrained from the log under `weights`."""
    import numpy as np

    from simulators import ope

    # The config's catalog, as the Router's: its reward span (27.7 at cost_weight 1) sets the VW costs.
    pmfs, _ = ope.target_pmfs("retrained", rounds, weights, config, config.models)
    target = np.array([pmfs[i][r.decision.chosen] for i, r in enumerate(rounds)])
    logged = np.array([r.decision.probability for r in rounds])
    w = target / logged
    quality = np.array([r.quality for r in rounds])
    cost = np.array([r.cost_usd for r in rounds])
    return float(np.sum(w * quality) / np.sum(w)), float(np.sum(w * cost) / np.sum(w) * 1000)


def run_ope(args: argparse.Namespace) -> int:
    from simulators import ope, ope_report

    config = load_config(args.config).with_overrides(reward={"cost_weight": args.cost_weight})
    rounds = ope.rounds_from_store(args.log)
    weights = config.reward.weights
    assessments = ope.assess(rounds, weights, config, config.models, targets=args.target or None)
    logged = ope.logged_value(rounds, weights)
    if args.format == "json":
        print(json.dumps(ope_report.as_json(assessments, logged, len(rounds), args.cost_weight), indent=2))
    else:
        print(ope_report.text(assessments, logged, len(rounds), args.cost_weight))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("simulate", help="replay a data set through the router; print its metrics")
    add_world_arguments(p)
    p.add_argument("--cost-weight", type=float, default=0.1)
    p.add_argument("--world", help="none, drift, outage, price, new-model, task-shift")
    p.add_argument("--format", choices=("json", "table"), default="table")
    p.add_argument("--save-log", help="write the run's log (decisions, rewards) as a banditroute.db for `ope`")
    p.set_defaults(func=simulate)

    p = sub.add_parser("sweep", help="one router run per cost weight; writes frontier.csv and frontier.png")
    add_world_arguments(p)
    p.add_argument("--weights", default=DEFAULT_WEIGHTS)
    p.add_argument("--out", default="out/sweep")
    add_protocol_arguments(p)
    p.set_defaults(func=run_sweep)

    p = sub.add_parser("quality", help="sweep several data sets; write the routing-quality table and plots")
    p.add_argument("--data", required=True, help="a folder holding one folder per data set")
    p.add_argument("--sets", default="routerbench,llmrouter,logpai", help="data set folders, comma-separated")
    p.add_argument("--weights", default=QUALITY_WEIGHTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use the first N prompts of each file only")
    p.add_argument("--with-task", action="store_true", help="pass the data set's task label as metadata.task")
    p.add_argument("--config", help="TOML config; default: bundled")
    p.add_argument("--out", default="out/quality")
    add_protocol_arguments(p)
    p.add_argument(
        "--switch-weight",
        type=_switch,
        metavar="BEFORE:AFTER",
        help="also run a router switched from one cost weight to another at mid-stream, against one at AFTER",
    )
    p.set_defaults(func=run_quality)

    p = sub.add_parser("tune", help="the cost weight that meets a target quality or a budget")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset")
    source.add_argument("--log", help="the service's SQLite log (uses OPE of a policy retrained per weight)")
    p.add_argument("--target-quality", type=float)
    p.add_argument("--budget", type=float, help="USD per 1,000 requests")
    p.add_argument("--weights", default=DEFAULT_WEIGHTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    p.add_argument("--with-task", action="store_true")
    p.add_argument("--config")
    p.set_defaults(func=tune)

    p = sub.add_parser("ope", help="off-policy estimates (IPS, SNIPS, DR, ...) from the service's log")
    p.add_argument("--log", required=True, help="path of banditroute.db")
    p.add_argument("--cost-weight", type=float, default=0.1)
    p.add_argument("--target", action="append", help="model:<name>, uniform, greedy, retrained (repeatable)")
    p.add_argument("--format", choices=("json", "table"), default="table")
    p.add_argument("--config")
    p.set_defaults(func=run_ope)
