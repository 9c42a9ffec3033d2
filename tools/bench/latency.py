"""Decision-path latency in process: featurize + predict per request, on a data set's real prompts.

    python -m tools.bench.latency --dataset DIR [--config FILE] [--requests N]

The policy first learns from a warm-up share of the stream (so the weights are not all zero), then
every request of the timed share is featurized and scored (decomposed learner: the whole decision)
with the data set's models (logpai has 8) and its time measured alone. Prints p50, p99
(`tools.bench.stats.percentile`, the nearest rank, as `make bench` does) and the mean in
microseconds, of the wall clock and of this thread's CPU time (on a busy machine the wall clock also
counts the time the process waited for a core). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from banditroute.config import load_config
from banditroute.decider import decide
from banditroute.features import estimate_tokens, featurize
from banditroute.policy import Policy
from simulators.datasets import load_dataset
from simulators.worlds import DatasetWorld
from tools.bench.stats import percentile

WARMUP_SHARE = 0.5


def measure(world: DatasetWorld, config_path: str | None, requests: int) -> dict[str, float]:
    config = load_config(config_path)
    specs = world.models(0)
    names = [m.name for m in specs]
    policy = Policy(config.policy, specs)
    n = min(len(world), requests)
    warm = int(n * WARMUP_SHARE)
    rng = np.random.default_rng(0)
    for step in range(warm):
        req = world.request(step)
        chosen = int(rng.integers(len(names)))
        result = world.outcome(step, names[chosen])
        policy.learn(
            featurize(req.query, req.metadata, config.features), names, chosen, 1.0 / len(names), 1.0 - result.quality
        )
    models = tuple(names)
    r = config.reward
    fixed = (r.weights, r.default_output_tokens, config.policy.thompson_draws, None, 0.0)
    wall, cpu = [], []
    for step in range(warm, n):
        req = world.request(step)
        t, c = time.perf_counter_ns(), time.thread_time_ns()
        if policy.decomposed:  # quality estimates + known cost terms + the Thompson pmf (decider.py)
            tokens = estimate_tokens(req.query)
            decide(policy, models, featurize(req.query, req.metadata, config.features), tokens, *fixed)
        else:
            policy.predict(featurize(req.query, req.metadata, config.features), names)
        cpu.append(time.thread_time_ns() - c)
        wall.append(time.perf_counter_ns() - t)
    out: dict[str, float] = {"models": len(names), "timed": len(wall)}
    for clock, values in (("wall", wall), ("cpu", cpu)):
        us = [v / 1000.0 for v in values]
        out |= {
            f"{clock}_p50_us": percentile(us, 50),
            f"{clock}_p99_us": percentile(us, 99),
            f"{clock}_mean_us": sum(us) / len(us),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--config")
    p.add_argument("--requests", type=int, default=6000)
    args = p.parse_args()
    world = DatasetWorld(load_dataset(args.dataset), seed=0)
    r = measure(world, args.config, args.requests)
    for clock in ("wall", "cpu"):
        print(
            f"{world.name}: featurize + predict with {r['models']} models over {r['timed']} requests ({clock}): "
            f"p50 {r[clock + '_p50_us']:.0f} µs, p99 {r[clock + '_p99_us']:.0f} µs, mean {r[clock + '_mean_us']:.0f} µs"
        )


if __name__ == "__main__":
    main()
