"""Featurize alone, this checkout's against an older revision's, side by side in one run.

    python -m tools.bench.featurize --dataset data/routerbench [--against REV] [--requests N] [--rounds R]

The older `banditroute/features.py` is read with `git show REV:...` and loaded as a module of its own;
both featurize the same prompts of the data set, request by request in alternating order (so a busy
machine slows both alike), this one with a keyed `WordTokens` as the service uses. The first round of this checkout runs
with an empty token cache (every word hashed once: the cold figure); the warm figure is the later
rounds. Prints the mean and p50 per request in µs (this thread's CPU time) and the ratio. A benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import types
from collections.abc import Callable

from banditroute import features
from banditroute.config import load_config
from simulators.datasets import load_dataset
from simulators.worlds import DatasetWorld
from tools.bench.stats import percentile


def older_module(rev: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:banditroute/features.py"], check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType(f"features_at_{rev}")
    exec(compile(source, f"{rev}:banditroute/features.py", "exec"), module.__dict__)
    return module


def timed(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        c = time.thread_time_ns()
        fn(i)
        out.append((time.thread_time_ns() - c) / 1000.0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--against", default="f00a0e1", help="the revision to compare with (default: before hashing)")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    world = DatasetWorld(load_dataset(args.dataset), seed=0)
    requests = [world.request(i) for i in range(min(args.requests, len(world)))]
    cfg = load_config().features
    old = older_module(args.against)
    tokens = features.WordTokens(features.word_key(os.urandom(32)))
    n = len(requests)

    def run_old(i: int) -> object:
        return old.featurize(requests[i].query, requests[i].metadata, cfg)

    def run_new(i: int) -> object:
        return features.featurize(requests[i].query, requests[i].metadata, cfg, tokens)

    cold = timed(run_new, n)
    old_times: list[float] = []
    new_times: list[float] = []
    for r in range(args.rounds):
        for i in range(n):  # request by request, the order alternating: both see the same machine
            first, second = (old_times, run_old), (new_times, run_new)
            for times, fn in (first, second) if (i + r) % 2 == 0 else (second, first):
                times.extend(timed(lambda _: fn(i), 1))
    mean = {k: sum(v) / len(v) for k, v in (("old", old_times), ("new", new_times), ("cold", cold))}
    print(f"{world.name}: featurize over {n} requests x {args.rounds} rounds (CPU µs per request)")
    print(f"  {args.against} (plain words): mean {mean['old']:.1f}, p50 {percentile(old_times, 50):.1f}")
    print(
        f"  this checkout (keyed tokens, warm cache): mean {mean['new']:.1f}, p50 {percentile(new_times, 50):.1f};"
        f" ratio {mean['new'] / mean['old']:.2f}"
    )
    print(f"  this checkout, first pass (empty cache): mean {mean['cold']:.1f}; ratio {mean['cold'] / mean['old']:.2f}")


if __name__ == "__main__":
    main()
