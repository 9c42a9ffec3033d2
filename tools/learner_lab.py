"""Screen learner variants quickly: router - best fixed per (set, protocol, weight), mean over seeds.

    .venv/bin/python tools/learner_lab.py --sets routerbench,llmrouter --protocol cold --seeds 0 --limit 1000 \
        [--config FILE] [--set policy.learning_rate=0.1 ...]

`--set section.key=value` overrides a config key (a number, true/false or a string). No skyline: fast.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

from banditroute.config import load_config
from simulators.protocols import measure
from simulators.sweep import dataset_world
from simulators.worlds import DatasetWorld


def _value(text: str) -> object:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--sets", default="routerbench,llmrouter")
    ap.add_argument("--weights", default="0.03,0.1,0.3,1")
    ap.add_argument("--protocol", default="cold")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--evals", type=int, default=200)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--config")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()
    config = load_config(args.config)
    overrides: dict[str, dict[str, object]] = defaultdict(dict)
    for item in args.overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        overrides[section][name] = _value(value)
    weights = [float(w) for w in args.weights.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    protocols = args.protocol.split(",")
    started = time.perf_counter()
    means = []
    for name in args.sets.split(","):
        path = Path(args.data) / name

        def world_of(seed: int, path: Path = path) -> DatasetWorld:
            return dataset_world(path, seed=seed, limit=args.limit)

        cfg = config.with_overrides(**overrides) if overrides else config
        m = measure(
            world_of, protocols=protocols, weights=weights, seeds=seeds, config=cfg, evals=args.evals, skyline=False
        )
        cells: dict[tuple[str, float], list[float]] = defaultdict(list)
        for c in m.cells:
            ref = c.best_fixed
            cells[(c.protocol, c.cost_weight)].append(c.router - ref)
            if c.protocol.startswith("drift"):
                cells[(c.protocol + " vs frozen", c.cost_weight)].append(c.router - (c.frozen or 0.0))
                cells[(c.protocol + " vs before", c.cost_weight)].append(c.router - (c.before_best_fixed or 0.0))
            if c.protocol == "warm":
                cells[("warm vs evals", c.cost_weight)].append(c.router - (c.best_on_evals or 0.0))
        for (protocol, weight), diffs in cells.items():
            mean = sum(diffs) / len(diffs)
            if "vs" not in protocol:
                means.append(mean)
            print(f"{name:12s} {protocol:22s} w={weight:<5g} {mean:+.3f}  (min {min(diffs):+.3f})", flush=True)
    print(f"mean router - best fixed {sum(means) / len(means):+.4f}  in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
