"""`make demo`: a real service fed with simulated traffic from logged data, so the dashboard fills.

It writes a demo configuration whose catalog is the dataset's model pool, starts `banditroute
serve` on loopback, and replays the dataset's prompts through HTTP: POST /route, then POST /reward
with the quality and cost the data records for the model the router chose (the "simulated user"
is the dataset). Halfway it raises `cost_weight` through the admin API, so the dashboard shows a
run-time change and the router moving to cheaper models. It then saves a screenshot of the
dashboard with headless chromium (to out/dashboard.png unless --screenshot names another path) and
keeps serving until Ctrl-C (or exits with --exit).

Reproducible: `--seed` fixes every random source the figures depend on. It shuffles the traffic
order, and it is the router's `policy.seed`, so the draws the decisions sample their models with
are a seeded stream instead of the random event ids'; the feedback is what the data records for the
chosen model. The same command prints the same figures (mean quality, cost per 1,000 requests,
selection shares); only the clock times, and so how the requests fall into the dashboard's time
buckets, differ.

The datasets record no latency and no context windows: the demo does not learn latency
(latency_weight = 0) and gives every model a context window no prompt reaches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from banditroute.store.datadir import secret_path
from simulators.datasets import Dataset, load_dataset
from tools.launch import ServerDidNotStart, wait_healthy_async

ADMIN_KEY = "demo-admin-key"  # loopback only, for this demo's own server
CONTEXT_WINDOW = 1_000_000  # not in the data: large enough that no rule excludes a model
START_TIMEOUT_S = 30.0


def load(data_dir: Path) -> Dataset:
    """The data set's prompts that have an outcome for every model, so any pick can be answered."""
    if not (data_dir / "models.json").is_file():
        raise SystemExit(f"no dataset at {data_dir} (pass --data, or DATA=... to make)")
    ds = load_dataset(data_dir)
    return ds.subset([i for i in range(ds.n) if ds.available(i).all()])


def traffic(n_prompts: int, requests: int, seed: int) -> list[int]:
    """The prompts in the order they are sent: seeded shuffles of all of them, as many as `requests` needs."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < requests:
        block = list(range(n_prompts))
        rng.shuffle(block)
        order += block
    return order[:requests]


def seed_secret(data_dir: Path, seed: int) -> None:
    """The demo's log key, from its seed: the word features' keyed tokens, and so the run, repeat exactly.

    A throwaway demo log only; a real data directory gets a random secret (store/datadir.py).
    """
    path = secret_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hashlib.sha256(f"banditroute demo seed {seed}".encode()).hexdigest())
    path.chmod(0o600)


def demo_config(ds: Dataset, data_dir: str, port: int, args: argparse.Namespace) -> str:
    lines = [
        "# Written by `make demo` (tools/demo.py): the catalog is the dataset's model pool.",
        f'[server]\nhost = "127.0.0.1"\nport = {port}\ndata_dir = "{data_dir}"\ncheckpoint_interval_s = 10.0',
        f"[reward]\ncost_weight = {args.cost_weight}\nlatency_weight = 0.0\nreward_wait_s = 30.0",
        f"[policy]\nseed = {args.seed}",
        f"[dashboard]\ninterval_s = {args.interval}\nhistory = 600\npoll_interval_s = 2.0",
    ]
    for name in ds.models:
        input_price, output_price = ds.prices[name]
        lines.append(
            f'[[models]]\nname = "{name}"\ninput_price = {input_price or 0.0}\n'
            f"output_price = {output_price or 0.0}\ncontext_window = {CONTEXT_WINDOW}"
        )
    return "\n\n".join(lines) + "\n"


async def wait_healthy(session: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]) -> None:
    try:
        await wait_healthy_async(base, proc, timeout_s=START_TIMEOUT_S, poll_s=0.2)
    except ServerDidNotStart as exc:
        raise SystemExit(str(exc)) from None


async def drive(
    session: aiohttp.ClientSession, base: str, ds: Dataset, order: list[int], args: argparse.Namespace
) -> dict[str, float]:
    """Send `order`'s prompts one after another at `args.rate`; the totals of what the answers recorded."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    totals = {"requests": 0, "quality": 0.0, "cost_usd": 0.0}
    started = time.monotonic()
    column = {m: j for j, m in enumerate(ds.models)}
    for i, row in enumerate(order):
        if i == len(order) // 2:
            async with session.post(
                base + "/admin/weights", json={"cost_weight": args.cost_weight_later}, headers=admin
            ) as resp:
                resp.raise_for_status()
        async with session.post(
            base + "/route", json={"query": ds.prompts[row], "metadata": {"task": ds.tasks[row]}}
        ) as resp:
            resp.raise_for_status()
            decision = await resp.json()
        j = column[decision["model"]]
        feedback = {
            "event_id": decision["event_id"],
            "quality": float(ds.quality[row, j]),
            "source": "judge",
            "cost_usd": float(ds.cost_usd[row, j]),
        }
        async with session.post(base + "/reward", json=feedback) as resp:
            resp.raise_for_status()
        totals["requests"] += 1
        totals["quality"] += feedback["quality"]
        totals["cost_usd"] += feedback["cost_usd"]
        ahead = (i + 1) / args.rate - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)
    return totals


def figures(totals: dict[str, float], stats: dict[str, Any]) -> dict[str, Any]:
    """What the demo prints: the run's mean quality and cost per 1,000 requests, and /stats' counts."""
    n = totals["requests"]
    return {
        "requests": n,
        "mean_quality": round(totals["quality"] / n, 4),
        "cost_per_1k_usd": round(1000 * totals["cost_usd"] / n, 4),
        "rewards_learned": stats["rewards_learned"],
        "selection_share": {m: round(s, 3) for m, s in stats["selection_share"].items()},
    }


# Headless chromium with nothing that reaches the network or needs a GPU (the dashboard test uses them too).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def screenshot(url: str, out: Path, profile: Path) -> bool:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (`make browser`): no screenshot", file=sys.stderr)
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1280,1800",
            "--virtual-time-budget=6000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return True


async def main_async(args: argparse.Namespace) -> int:
    ds = load(Path(args.data))
    order = traffic(ds.n, args.requests, args.seed)
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)  # every demo starts from an empty log
    work.mkdir(parents=True)
    config = work / "demo.toml"
    config.write_text(demo_config(ds, str(work / "var"), args.port, args))
    seed_secret(work / "var", args.seed)
    env = {**os.environ, "BANDITROUTE_ADMIN_KEY": ADMIN_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "banditroute.cli", "serve", "--config", str(config), "--log-level", "warning"], env=env
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, proc)
            print(
                f"dashboard: {base}/dashboard   ({len(order)} requests at {args.rate}/s from {args.data},"
                f" seed {args.seed})"
            )
            totals = await drive(session, base, ds, order, args)
            async with session.get(base + "/stats") as resp:
                stats = await resp.json()
        print(json.dumps(figures(totals, stats), indent=1))
        if args.screenshot and screenshot(base + "/dashboard", Path(args.screenshot), work / "chromium"):
            print(f"screenshot: {args.screenshot}")
        if not args.exit:
            print("serving until Ctrl-C")
            await asyncio.get_running_loop().run_in_executor(None, proc.wait)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    return 0


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/routerbench", help="a dataset folder (see data/README.md)")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--requests", type=int, default=2400)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--interval", type=float, default=2.0, help="dashboard bucket width in seconds")
    parser.add_argument("--cost-weight", type=float, default=0.02, help="cost_weight at the start")
    parser.add_argument("--cost-weight-later", type=float, default=0.1, help="cost_weight set halfway")
    parser.add_argument(
        "--seed", type=int, default=0, help="the traffic order and the router's policy.seed: same seed, same figures"
    )
    parser.add_argument("--work-dir", default="var/demo")
    parser.add_argument(
        "--screenshot", default="out/dashboard.png", help="save a PNG of the dashboard here ('' for none)"
    )
    parser.add_argument("--exit", action="store_true", help="stop the service after the screenshot")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
