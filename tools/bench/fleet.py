"""`make bench`'s `fleet` section: two serving processes on PostgreSQL next to the same on SQLite.

Each engine runs `banditroute serve --workers 2` on one port (SO_REUSEPORT), with the bundled
configuration as it is: on SQLite the two serving processes share the log file and a third process
learns; on PostgreSQL (`[store] url`, a throwaway cluster from tools/pgcluster.py with the default
durability, fsync on) both processes are hosts of one fleet, one of them elected the learner. On each:

- `routes_per_s`: `wrk` saturation on `/route` (every answer after its decision's commit);
- `reward_parts_per_s`: `wrk` on `/reward`, system parts for pending events, each stored durably
  before its 202;
- `snapshot_delay_s`: from the 202 of the part that completes a join to the first `/stats` whose
  `policy_learned_seq` includes it (the learner learns and publishes, a serving process reloads),
  median and max over `SNAPSHOT_SAMPLES` rewards with no other load.

On one machine the database shares the two CPUs with the hosts and the load generator; on a second
machine its CPU and fsyncs would be off the hosts, and every commit would cross the network.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from banditroute.config import default_config_text
from tools import pgcluster

SNAPSHOT_SAMPLES = 8
SETTLED_READS = 8  # /stats answers in a row that must agree before a probe (two processes behind one port)
# Events the reward load spreads its parts over: enough that none reaches reward.max_parts_per_event
# (a 409 is not a stored part) at the rates this machine reaches.
REWARD_EVENTS = 2000
_POLL_S = 0.01


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=10) as resp:
        return dict(json.loads(resp.read()))


def _answered_per_s(result: dict[str, Any]) -> int:
    """Requests per second that got a 2xx: for /reward, parts stored durably."""
    return round((result["requests"] - result["non_2xx"] - result["socket_errors"]) / result["duration_s"])


def _settled_seq(url: str, timeout_s: float) -> int:
    """The policy every serving process behind `url` serves: `SETTLED_READS` /stats in a row agree.

    Each read is a new connection, which the kernel gives to either process (SO_REUSEPORT): without
    this, one process still on the previous snapshot would make the next probe look instant."""
    deadline = time.perf_counter() + timeout_s
    seen = [_stats(url)["policy_learned_seq"]]
    while len(seen) < SETTLED_READS or len(set(seen[-SETTLED_READS:])) > 1:
        if time.perf_counter() > deadline:
            raise RuntimeError("the serving processes did not settle on one snapshot")
        time.sleep(_POLL_S)
        seen.append(_stats(url)["policy_learned_seq"])
    return int(seen[-1])


def snapshot_delays(url: str, post: Any, samples: int = SNAPSHOT_SAMPLES, timeout_s: float = 30.0) -> dict[str, Any]:
    """Seconds from a completing reward's 202 to a serving process answering with the policy that learned it."""
    delays = []
    for i in range(samples):
        before = _settled_seq(url, timeout_s)
        event = post(url + "/route", {"query": f"snapshot delay probe {i}"})["event_id"]
        post(url + "/reward", {"event_id": event, "quality": 1.0, "cost_usd": 0.0001, "latency_ms": 500})
        acked = time.perf_counter()
        deadline = acked + timeout_s
        while _stats(url)["policy_learned_seq"] <= before:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no snapshot with the probe's reward within {timeout_s} s")
            time.sleep(_POLL_S)
        delays.append(time.perf_counter() - acked)
    return {
        "median_s": round(statistics.median(delays), 3),
        "max_s": round(max(delays), 3),
        "samples": samples,
    }


def bench_fleet(
    work: Path, route_bodies: Path, saturation_s: float, *, serving: Any, wrk: Any, reward_bodies: Any, post: Any
) -> dict[str, Any]:
    """The `fleet` section; the harness passes its own server launcher, `wrk` and body makers."""
    out: dict[str, Any] = {}
    reason = pgcluster.unavailable()
    if reason is not None:
        return {"skipped": reason}
    cluster = pgcluster.PostgresCluster().start()
    try:
        engines = {
            "sqlite": default_config_text(),
            "postgres": default_config_text() + f'\n[store]\nurl = "{cluster.create_database("bench")}"\n',
        }
        for engine, config_toml in engines.items():
            with serving(work, 2, None, config_toml) as url:
                routes = wrk(url, "/route", route_bodies, saturation_s, None)
                parts = wrk(url, "/reward", reward_bodies(url, work, REWARD_EVENTS), saturation_s, None)
                out[engine] = {
                    "routes_per_s": _answered_per_s(routes),
                    "reward_parts_per_s": _answered_per_s(parts),
                    "snapshot_delay_s": snapshot_delays(url, post),
                    "route": routes,
                    "reward": parts,
                }
    finally:
        cluster.stop()
    return out


def summary(fleet: dict[str, Any]) -> list[str]:
    """The table's lines for the section."""
    if "skipped" in fleet:
        return [f"fleet: skipped ({fleet['skipped']})"]
    fleet = {k: v for k, v in fleet.items() if k in ("sqlite", "postgres")}
    lines = ["two serving processes      routes/s   reward parts/s   snapshot delay median/max (s)"]
    for engine in ("sqlite", "postgres"):
        f = fleet[engine]
        d = f["snapshot_delay_s"]
        lines.append(
            f"  {engine:10s}            {f['routes_per_s']:8d}   {f['reward_parts_per_s']:14d}   "
            f"{d['median_s']:.3f} / {d['max_s']:.3f}"
        )
    return lines


def main() -> int:
    """`python -m tools.bench.fleet`: this section alone, printed as JSON (the same as in `make bench`)."""
    import argparse

    from tools.bench import harness

    parser = argparse.ArgumentParser(prog="python -m tools.bench.fleet", description=__doc__)
    parser.add_argument("--data", default=str(harness.ROOT / "data"), help="the bundled data sets")
    parser.add_argument("--saturation-s", type=float, default=10.0, help="seconds of wrk per figure")
    args = parser.parse_args()
    prompts = [r["prompt"] for r in harness.load_rows(Path(args.data))]
    load_at_start = os.getloadavg()
    result = harness.bench_fleet_phase(prompts, args.saturation_s)
    for engine in ("sqlite", "postgres"):
        for detail in ("route", "reward"):
            result.get(engine, {}).pop(detail, None)
    result["loadavg"] = {"start": load_at_start, "end": os.getloadavg()}
    print(json.dumps(result, indent=2))
    print("\n".join(summary(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
