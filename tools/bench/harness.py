"""`banditroute bench` (`make bench`): the performance figures of the README, measured on this machine.

Sections, each a plain dict in `bench.json`:

- `in_process`: featurize, predict and learn, p50/p99 in µs for 4, 8 and 16 models, and the whole
  decision (featurize + rules + predict + sample + log enqueue) through the Router with the
  service's EventLog as its sink;
- `replay`: decisions/s of the simulators' replay (simulators/simulate.py: the in-process Router,
  each decision followed by its simulated system and quality feedback, so every one is learned)
  over the largest bundled data set (logpai, 32,000 prompts);
- `memory`: RSS of a process that routed 1M requests whose joins are all still pending;
- `http`: the service on loopback. Latency at fixed offered loads comes from `openloop`
  (tools/load/openloop.c: open loop, latency from the intended send time); saturation and reward ingest
  from Debian's `wrk` (closed loop, tools/load/post.lua). The single process is pinned to CPU 0 and the
  load generators to CPU 1; the multi-process mode (`--workers 2`) uses both CPUs, so its load
  generator shares them.

Prompts are the logpai set's (`--data`), sent in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from banditroute import features
from banditroute.config import default_config_text, load_config
from banditroute.policy import Policy
from banditroute.router import Router
from banditroute.store.sqlite import Store
from banditroute.store.writer import EventLog
from banditroute.types import ModelSpec
from tools.bench import fleet, peers
from tools.bench.stats import percentile, timings_us
from tools.launch import wait_healthy

ROOT = Path(__file__).resolve().parents[2]  # the repository
LARGEST_SET = "logpai"
MODEL_COUNTS = (4, 8, 16)
METADATA = ({"user_tier": "free", "channel": "web", "task": "logs"}, {"user_tier": "pro", "channel": "api"})
RATES = (500, 1000, 2000)
HEADLINE_RATE = 1000
PEER_ITERATIONS = 3000  # LiteLLM's calls take milliseconds: enough for a p99, in seconds


# -- helpers ---------------------------------------------------------------------------------------


def speed_probe_ms(n: int = 2_000_000) -> float:
    """A fixed pure-Python loop's time (best of 3): on a shared or virtual machine the CPU's speed
    drifts between runs (this machine: 0.42 to 0.60 s for 5M additions within an hour), and every
    figure here drifts with it. Compare runs only at similar probes."""
    best = float("inf")
    for _ in range(3):
        t0, total = time.perf_counter(), 0
        for i in range(n):
            total += i
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)


def load_rows(data_dir: Path, name: str = LARGEST_SET) -> list[dict[str, Any]]:
    with gzip.open(data_dir / name / "prompts.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def catalog(n: int) -> tuple[ModelSpec, ...]:
    """`n` models: the bundled catalog's, repeated with other names and prices beyond its size."""
    base = load_config().models
    out = []
    for i in range(n):
        spec = base[i % len(base)]
        round_ = i // len(base)
        out.append(
            spec
            if round_ == 0
            else replace(spec, name=f"{spec.name}-v{round_ + 1}", input_price=spec.input_price * (1 + round_))
        )
    return tuple(out)


# -- in process ------------------------------------------------------------------------------------


def bench_in_process(prompts: list[str], iterations: int) -> dict[str, Any]:
    config = load_config()
    feats = [features.featurize(q, METADATA[i % 2], config.features) for i, q in enumerate(prompts)]
    out: dict[str, Any] = {
        "featurize": timings_us(
            lambda i: features.featurize(prompts[i % len(prompts)], METADATA[i % 2], config.features), iterations
        )
    }
    for n in MODEL_COUNTS:
        specs = catalog(n)
        names = [m.name for m in specs]
        policy = Policy(config.policy, specs)
        for i in range(2000):  # a policy that has learned something
            policy.learn(feats[i % len(feats)], names, i % n, 1 / n, (i % 10) / 10)
        out[f"predict_{n}"] = timings_us(lambda i: policy.predict(feats[i % len(feats)], names), iterations)
        out[f"learn_{n}"] = timings_us(
            lambda i: policy.learn(feats[i % len(feats)], names, i % n, 1 / n, (i % 10) / 10), iterations
        )
    out["decision_8"] = asyncio.run(_decisions(prompts, iterations))
    return out


async def _decisions(prompts: list[str], iterations: int) -> dict[str, float]:
    """The whole decision through the Router, logging into a real EventLog (enqueue; commits run
    on the writer thread meanwhile, as in the service)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        eventlog = EventLog(store)
        eventlog.start()
        router = Router(load_config(), sink=eventlog)
        clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
        samples, cpu = [], []
        for i in range(iterations):
            t0, c0 = clock(), cpu_clock()
            router.route(prompts[i % len(prompts)], METADATA[i % 2], now=time.time())
            cpu.append((cpu_clock() - c0) / 1000)
            samples.append((clock() - t0) / 1000)
            if i % 64 == 63:
                await asyncio.sleep(0)  # let the event loop hand batches to the writer, as between requests
        await eventlog.close()
        store.close()
    # Wall time is the latency; the thread's CPU time leaves out waiting for the CPU or the GIL, so
    # the two apart show how much of the tail is the code and how much the machine.
    return {
        "p50_us": round(percentile(samples, 50), 1),
        "p99_us": round(percentile(samples, 99), 1),
        "p999_us": round(percentile(samples, 99.9), 1),
        "cpu_p50_us": round(percentile(cpu, 50), 1),
        "cpu_p99_us": round(percentile(cpu, 99), 1),
    }


def bench_simulate(data_dir: Path) -> dict[str, Any]:
    """The simulators' replay (the same Router, simulated feedback) over the largest bundled set."""
    from simulators.datasets import load_dataset
    from simulators.simulate import new_router, simulate
    from simulators.worlds import DatasetWorld

    world = DatasetWorld(load_dataset(data_dir / LARGEST_SET), seed=0, with_task=True)
    router = new_router(world, load_config())
    t0 = time.perf_counter()
    steps = sum(1 for _ in simulate(router, world))
    elapsed = time.perf_counter() - t0
    return {
        "set": LARGEST_SET,
        "decisions": steps,
        "learned": router.counts["learned"],
        "seconds": round(elapsed, 2),
        "decisions_per_s": round(steps / elapsed),
    }


def bench_memory(data_dir: Path, n: int) -> dict[str, Any]:
    """RSS of a fresh process after `n` routes whose joins all stay pending (run in a child)."""
    out = subprocess.run(
        [sys.executable, "-m", "tools.bench.harness", "--memory-child", str(n), "--data", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def _memory_child(data_dir: Path, n: int) -> None:
    with gzip.open(data_dir / LARGEST_SET / "prompts.jsonl.gz", "rt", encoding="utf-8") as f:
        prompts = [json.loads(line)["prompt"] for line in f]  # the prompts only: the RSS is the router's
    config = load_config()
    config = config.with_overrides(server={"max_pending": max(n, config.server.max_pending)})
    router = Router(config)
    base = _rss_mib()
    for i in range(n):
        router.route(prompts[i % len(prompts)], METADATA[i % 2], now=float(i))
    print(
        json.dumps(
            {
                "routes": n,
                "pending": len(router.joiner),
                "rss_mib": round(_rss_mib()),
                "rss_mib_before": round(base),
                "bytes_per_pending": round((_rss_mib() - base) * 2**20 / max(n, 1)),
            }
        )
    )


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- over HTTP -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pin(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []


def server_config(**server_keys: str | float) -> str:
    """The bundled configuration with these `[server]` keys set (strings and numbers)."""
    text = default_config_text()
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in server_keys.items())
    return text.replace("[server]\n", "[server]\n" + lines, 1)


@contextmanager
def serving(workdir: Path, workers: int, cpu: str | None, config_toml: str = "") -> Iterator[str]:
    """`banditroute serve` on loopback with a fresh log (and `config_toml`, if any); yields its URL."""
    with server_process(workdir, workers, cpu, config_toml) as (url, _):
        yield url


@contextmanager
def server_process(
    workdir: Path, workers: int, cpu: str | None, config_toml: str = "", probe_out: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`serving`, yielding the process too; with `probe_out`, under the event-loop callback probe
    (tools/bench/loopprobe.py: SIGUSR1 starts counting, SIGUSR2 stops), which writes its report there
    when the server stops."""
    port = _free_port()
    data_dir = workdir / f"var-{port}"
    program = ["banditroute.cli"] if probe_out is None else ["tools.bench.loopprobe", str(probe_out)]
    cmd = [
        *_pin(cpu),
        sys.executable,
        "-m",
        *program,
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--workers",
        str(workers),
    ]
    if config_toml:
        config_path = workdir / f"config-{port}.toml"
        config_path.write_text(config_toml, encoding="utf-8")
        cmd += ["--config", str(config_path)]
    with open(workdir / f"server-{port}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            yield url, proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def openloop(
    tool: Path,
    url: str,
    path: str,
    bodies: Path,
    rate: int,
    duration: float,
    warmup: float,
    cpu: str | None,
    connections: int = 64,
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    out = subprocess.run(
        [*_pin(cpu), str(tool), host, port, path, str(bodies), str(rate), str(duration), str(warmup), str(connections)],
        check=True,
        capture_output=True,
        text=True,
    )
    return expect_2xx(f"openloop POST {path} at {rate} req/s", json.loads(out.stdout), "errors")


def wrk(url: str, path: str, bodies: Path, duration: float, cpu: str | None, connections: int = 64) -> dict[str, Any]:
    out = subprocess.run(
        [
            *_pin(cpu),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "-s",
            str(ROOT / "tools" / "load" / "post.lua"),
            url + path,
            "--",
            str(bodies),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result = expect_2xx(f"wrk POST {path}", json.loads(out.stdout.strip().splitlines()[-1]), "non_2xx", "socket_errors")
    result["rps"] = round(result["requests"] / result["duration_s"])
    return result


class BenchFailed(RuntimeError):
    """A phase got answers it should not have: its figures would count refusals or errors."""


def expect_2xx(phase: str, result: dict[str, Any], *error_keys: str) -> dict[str, Any]:
    """`result`, or BenchFailed if any of its `error_keys` counts (non-2xx answers, socket errors)."""
    bad = {k: result[k] for k in error_keys if result.get(k)}
    if bad:
        raise BenchFailed(f"{phase}: unexpected answers {bad} in {result}")
    return result


def bench_http(
    prompts: list[str], tool: Path, duration: float, warmup: float, rates: Sequence[int], saturation_s: float
) -> dict[str, Any]:
    two_cpus = (os.cpu_count() or 1) >= 2
    server_cpu, client_cpu = ("0", "1") if two_cpus else (None, None)
    out: dict[str, Any] = {
        "pinning": {"server_cpu": server_cpu, "load_cpu": client_cpu},
        "single": {},
        "workers_2": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        route_bodies = work / "route.jsonl"
        route_bodies.write_text(
            "".join(json.dumps({"query": q, "metadata": METADATA[i % 2]}) + "\n" for i, q in enumerate(prompts[:2000]))
        )
        noop_bodies = work / "noop.jsonl"
        noop_bodies.write_text(route_bodies.read_text())  # the same bytes: the floor reads a body as large

        single = out["single"]
        with serving(work, 1, server_cpu) as url:
            for rate in rates:
                single[f"floor_{rate}"] = openloop(tool, url, "/noop", noop_bodies, rate, duration, warmup, client_cpu)
                single[f"route_{rate}"] = openloop(
                    tool, url, "/route", route_bodies, rate, duration, warmup, client_cpu
                )
                _progress(
                    f"single process at {rate} req/s: route p99 {single[f'route_{rate}']['p99_ms']} ms, "
                    f"floor p99 {single[f'floor_{rate}']['p99_ms']} ms"
                )
            single["floor_saturation"] = wrk(url, "/noop", noop_bodies, saturation_s, client_cpu)
            single["route_saturation"] = wrk(url, "/route", route_bodies, saturation_s, client_cpu)
            single["reward_ingest"] = reward_ingest(url, work, saturation_s, client_cpu)
            _progress(
                f"single process: saturation {single['route_saturation']['rps']} routes/s, "
                f"reward ingest {single['reward_ingest']['rps']} parts/s"
            )

        out["durability"] = bench_durability(work, tool, route_bodies, duration, warmup, server_cpu, client_cpu)

        multi = out["workers_2"]
        with serving(work, 2, None) as url:
            # Its own floor: two processes on two CPUs, the load generator sharing them.
            multi[f"floor_{HEADLINE_RATE}"] = openloop(
                tool, url, "/noop", noop_bodies, HEADLINE_RATE, duration, warmup, None
            )
            multi[f"route_{HEADLINE_RATE}"] = openloop(
                tool, url, "/route", route_bodies, HEADLINE_RATE, duration, warmup, None
            )
            multi["route_saturation"] = wrk(url, "/route", route_bodies, saturation_s, None)
            multi["reward_ingest"] = reward_ingest(url, work, saturation_s, None)
            _progress(
                f"2 workers: saturation {multi['route_saturation']['rps']} routes/s, "
                f"reward ingest {multi['reward_ingest']['rps']} parts/s"
            )
    return out


def bench_durability(
    work: Path,
    tool: Path,
    bodies: Path,
    duration: float,
    warmup: float,
    server_cpu: str | None,
    client_cpu: str | None,
) -> dict[str, Any]:
    """Each `server.durability` under the event-loop callback probe, single process, at the headline
    rate: /noop (its floor) and /route, and the probe's count of slow callbacks during /route and of
    those that overlapped an fsync. "process" is the default measured above without the probe; its
    probed run shows where its fsyncs went."""
    out: dict[str, Any] = {}
    for durability in ("power", "process"):
        probe_path = work / f"probe-{durability}.json"
        config = server_config(durability=durability)
        phase: dict[str, Any] = {}
        with server_process(work, 1, server_cpu, config, probe_out=probe_path) as (url, proc):
            phase[f"floor_{HEADLINE_RATE}"] = openloop(
                tool, url, "/noop", bodies, HEADLINE_RATE, duration, warmup, client_cpu
            )
            # The probe counts the measured seconds of /route only (openloop's warm-up included).
            proc.send_signal(signal.SIGUSR1)
            phase[f"route_{HEADLINE_RATE}"] = openloop(
                tool, url, "/route", bodies, HEADLINE_RATE, duration, warmup, client_cpu
            )
            proc.send_signal(signal.SIGUSR2)
        phase["loop_probe"] = json.loads(probe_path.read_text())
        out[durability] = phase
        probe = phase["loop_probe"]
        _progress(
            f"durability={durability} (probed) at {HEADLINE_RATE} req/s: route p99 "
            f"{phase[f'route_{HEADLINE_RATE}']['p99_ms']} ms, floor p99 {phase[f'floor_{HEADLINE_RATE}']['p99_ms']} "
            f"ms; callbacks over 2 ms {probe['over_2ms']}, of them during an fsync {probe['over_2ms_during_fsync']}"
        )
    return out


# The most parts per second a reward-ingest run is prepared for: it routes enough events first that
# none reaches `reward.max_parts_per_event` below this rate (a faster run fails with the 409s it gets).
INGEST_MAX_PARTS_PER_S = 25_000


def reward_ingest(url: str, work: Path, seconds: float, cpu: str | None) -> dict[str, Any]:
    """`wrk` posting system parts (latency only) for events routed just before, spread so that no
    event gets more than `reward.max_parts_per_event`; every answer must be a 202. The figure counts
    the accepted parts only, and the log must hold at least that many more afterwards."""
    max_parts = load_config().reward.max_parts_per_event
    events = math.ceil(INGEST_MAX_PARTS_PER_S * max(1, round(seconds)) / max_parts)
    bodies = _reward_bodies(url, work, events)
    db = work / f"var-{url.rsplit(':', 1)[1]}" / "banditroute.db"
    stored_before = _stored_parts(db)
    result = wrk(url, "/reward", bodies, seconds, cpu)
    accepted = result["requests"] - result["non_2xx"]
    stored = _stored_parts(db) - stored_before
    if stored < accepted:
        raise BenchFailed(f"reward ingest: {accepted} parts acknowledged, {stored} stored")
    result.update(events=events, accepted_parts=accepted, stored_parts=stored)
    result["rps"] = round(accepted / result["duration_s"])
    return result


def _stored_parts(db: Path) -> int:
    store = Store(db)
    try:
        return store.counts()["feedback_parts"]
    finally:
        store.close()


def _reward_bodies(url: str, work: Path, events: int) -> Path:
    """One system part (latency only) per event routed just now: each stays pending, each part is stored."""
    path = work / "reward.jsonl"
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda i: _post(url + "/route", {"query": f"reward bench {i}"})["event_id"], range(events)))
    path.write_text(
        "".join(
            json.dumps({"event_id": e, "latency_ms": 800 + i % 400, "source": "system"}) + "\n"
            for i, e in enumerate(ids)
        )
    )
    return path


def bench_fleet_phase(prompts: list[str], saturation_s: float) -> dict[str, Any]:
    """Two serving processes on PostgreSQL next to the same on SQLite (tools/bench/fleet.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bodies = work / "route.jsonl"
        bodies.write_text(
            "".join(json.dumps({"query": q, "metadata": METADATA[i % 2]}) + "\n" for i, q in enumerate(prompts[:2000]))
        )
        result = fleet.bench_fleet(
            work, bodies, saturation_s, serving=serving, wrk=wrk, reward_bodies=_reward_bodies, post=_post
        )
    for engine in ("sqlite", "postgres"):
        if engine in result:
            f = result[engine]
            _progress(
                f"fleet on {engine}: {f['routes_per_s']} routes/s, {f['reward_parts_per_s']} parts/s, snapshot delay "
                f"{f['snapshot_delay_s']['median_s']} s"
            )
    return result


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


# -- the report ------------------------------------------------------------------------------------


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The keys the issue fixes, from the sections."""
    ip, http = report["in_process"], report.get("http")
    keys: dict[str, Any] = {
        "decision_p99_us": ip["decision_8"]["p99_us"],
        "decision_cpu_p99_us": ip["decision_8"]["cpu_p99_us"],
        "replay_decisions_per_s": report["replay"]["decisions_per_s"],
        "rss_mib_1m_pending": report["memory"]["rss_mib"],
    }
    if http:
        single = http["single"]
        route, floor = single[f"route_{HEADLINE_RATE}"], single[f"floor_{HEADLINE_RATE}"]
        keys.update(
            {
                "route_p50_ms": route["p50_ms"],
                "route_p99_ms": route["p99_ms"],
                "floor_p99_ms": floor["p99_ms"],
                "route_floor_p99_ratio": round(route["p99_ms"] / floor["p99_ms"], 2) if floor["p99_ms"] else None,
                "saturation_rps": max(single["route_saturation"]["rps"], http["workers_2"]["route_saturation"]["rps"]),
                "saturation_rps_single": single["route_saturation"]["rps"],
                "saturation_rps_workers_2": http["workers_2"]["route_saturation"]["rps"],
                "reward_parts_per_s": max(single["reward_ingest"]["rps"], http["workers_2"]["reward_ingest"]["rps"]),
            }
        )
        keys.update(ratio_keys(http))
    for engine, f in report.get("fleet", {}).items():
        if engine in ("sqlite", "postgres"):
            keys[f"fleet_routes_per_s_{engine}"] = f["routes_per_s"]
            keys[f"fleet_reward_parts_per_s_{engine}"] = f["reward_parts_per_s"]
            keys[f"fleet_snapshot_delay_s_{engine}"] = f["snapshot_delay_s"]["median_s"]
    keys.update(peers.ratios(report.get("peers", {}).get("litellm_router", {"skipped": "not run"}), ip["decision_8"]))
    return keys


def _ratio(route: dict[str, Any], floor: dict[str, Any], key: str) -> float | None:
    return round(route[key] / floor[key], 2) if floor[key] else None


def ratio_keys(http: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, as ratios of /route to the /noop floor measured on the same server in the
    same run: the default durability with one process and with `--workers 2`, and "power" (with its
    probe's slow callbacks that overlapped an fsync)."""
    keys: dict[str, Any] = {}
    phases = {"": http["single"], "_workers_2": http["workers_2"]}
    phases.update({f"_{name}": phase for name, phase in http.get("durability", {}).items() if name != "process"})
    for suffix, phase in phases.items():
        route, floor = phase[f"route_{HEADLINE_RATE}"], phase.get(f"floor_{HEADLINE_RATE}")
        if floor is None:
            continue
        keys[f"route_floor_p99_ratio{suffix}"] = _ratio(route, floor, "p99_ms")
        keys[f"route_floor_p999_ratio{suffix}"] = _ratio(route, floor, "p999_ms")
    for name, phase in http.get("durability", {}).items():
        keys[f"loop_callbacks_over_2ms_during_fsync_{name}"] = phase["loop_probe"]["over_2ms_during_fsync"]
    return keys


def table(report: dict[str, Any]) -> str:
    ip = report["in_process"]
    lines = ["in process (µs)          p50      p99"]
    lines.append(f"  featurize          {ip['featurize']['p50_us']:8.1f} {ip['featurize']['p99_us']:8.1f}")
    for n in MODEL_COUNTS:
        for what in ("predict", "learn"):
            t = ip[f"{what}_{n}"]
            lines.append(f"  {what} {n:2d} models  {t['p50_us']:8.1f} {t['p99_us']:8.1f}")
    d = ip["decision_8"]
    lines.append(f"  decision, 8 models {d['p50_us']:8.1f} {d['p99_us']:8.1f}")
    lines.append(f"    its CPU time     {d['cpu_p50_us']:8.1f} {d['cpu_p99_us']:8.1f}")
    http = report.get("http")
    if http:
        lines.append("HTTP, single process (ms)    p50      p90      p99    p99.9")
        for rate in sorted(
            {int(k.split("_")[1]) for k in http["single"] if k.startswith("route_") and k.split("_")[1].isdigit()}
        ):
            for what in ("route", "floor"):
                r = http["single"][f"{what}_{rate}"]
                lines.append(
                    f"  {what} @ {rate:5d}/s  {r['p50_ms']:8.2f} {r['p90_ms']:8.2f} {r['p99_ms']:8.2f} "
                    f"{r['p999_ms']:8.2f}"
                )
        for name, phase in http.get("durability", {}).items():
            for what in ("route", "floor"):
                r = phase[f"{what}_{HEADLINE_RATE}"]
                lines.append(
                    f"  {what} @ {HEADLINE_RATE}/s, durability={name}, probed  {r['p50_ms']:.2f} {r['p90_ms']:.2f} "
                    f"{r['p99_ms']:.2f} {r['p999_ms']:.2f}"
                )
        for what in ("route", "floor"):
            m = http["workers_2"][f"{what}_{HEADLINE_RATE}"]
            lines.append(
                f"  {what} @ {HEADLINE_RATE}/s, 2 workers {m['p50_ms']:.2f} {m['p90_ms']:.2f} {m['p99_ms']:.2f} "
                f"{m['p999_ms']:.2f}"
            )
    if report.get("fleet"):
        lines.extend(fleet.summary(report["fleet"]))
    m = report["machine"]
    lines.append(
        f"machine: load average {m['loadavg_at_start'][0]:.2f} -> {m['loadavg_at_end'][0]:.2f}, speed probe "
        f"{m['speed_probe_ms_at_start']} -> {m['speed_probe_ms_at_end']} ms (lower is faster)"
    )
    lines.append("headline")
    lines.extend(f"  {k:26s} {v}" for k, v in report["headline"].items())
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The README's table: `banditroute bench --markdown bench.json` prints it from a report."""
    h, ip = report["headline"], report["in_process"]
    rows = [("featurize (µs, p50 / p99)", f"{ip['featurize']['p50_us']} / {ip['featurize']['p99_us']}", "", "")]
    for n in MODEL_COUNTS:
        rows.append(
            (
                f"predict / learn, {n} models (µs, p50 / p99)",
                f"{ip[f'predict_{n}']['p50_us']} / {ip[f'predict_{n}']['p99_us']}",
                f"{ip[f'learn_{n}']['p50_us']} / {ip[f'learn_{n}']['p99_us']}",
                "",
            )
        )
    d = ip["decision_8"]
    rows.append(
        (
            "decision, 8 models (µs, p50 / p99; CPU time p50 / p99)",
            f"{d['p50_us']} / {d['p99_us']}",
            f"{d['cpu_p50_us']} / {d['cpu_p99_us']}",
            "≤ 150 p99",
        )
    )
    http = report.get("http")
    if http:
        single = http["single"]
        for rate in RATES:
            r, f = single[f"route_{rate}"], single[f"floor_{rate}"]
            rows.append(
                (
                    f"/route vs /noop at {rate}/s (ms, p50 / p90 / p99 / p99.9)",
                    f"{r['p50_ms']} / {r['p90_ms']} / {r['p99_ms']} / {r['p999_ms']}",
                    f"{f['p50_ms']} / {f['p90_ms']} / {f['p99_ms']} / {f['p999_ms']}",
                    "",
                )
            )
        for name, phase in http.get("durability", {}).items():
            r, f = phase[f"route_{HEADLINE_RATE}"], phase[f"floor_{HEADLINE_RATE}"]
            probe = phase["loop_probe"]
            rows.append(
                (
                    f'/route vs /noop at {HEADLINE_RATE}/s, `durability = "{name}"`, under the loop probe (ms, p50 / '
                    "p90 / p99 / p99.9)",
                    f"{r['p50_ms']} / {r['p90_ms']} / {r['p99_ms']} / {r['p999_ms']}",
                    f"{f['p50_ms']} / {f['p90_ms']} / {f['p99_ms']} / {f['p999_ms']}",
                    "",
                )
            )
            rows.append(
                (
                    f'`durability = "{name}"`: loop callbacks over 2 ms during /route (all; during an fsync), '
                    "fsyncs (count; longest ms)",
                    f"{probe['over_2ms']}; {probe['over_2ms_during_fsync']}",
                    f"{probe['fsyncs']}; {probe['fsync_max_ms']}",
                    "0 during an fsync" if name == "power" else "",
                )
            )
        for what in ("route", "noop"):
            m = http["workers_2"][f"{'route' if what == 'route' else 'floor'}_{HEADLINE_RATE}"]
            rows.append(
                (
                    f"/{what} at {HEADLINE_RATE}/s, --workers 2 (ms, p50 / p90 / p99 / p99.9)",
                    f"{m['p50_ms']} / {m['p90_ms']} / {m['p99_ms']} / {m['p999_ms']}",
                    "",
                    "",
                )
            )
        rows.append(
            (
                "saturation (req/s, wrk): /route 1 process, /noop 1 process",
                str(single["route_saturation"]["rps"]),
                str(single["floor_saturation"]["rps"]),
                "",
            )
        )
        rows.append(
            (
                "saturation (req/s, wrk): /route --workers 2",
                str(http["workers_2"]["route_saturation"]["rps"]),
                "",
                "≥ 4,000",
            )
        )
        rows.append(
            (
                "/reward ingest, durable (parts/s, wrk): 1 process, --workers 2",
                str(single["reward_ingest"]["rps"]),
                str(http["workers_2"]["reward_ingest"]["rps"]),
                "≥ 10,000",
            )
        )
    for suffix, what in (("", "1 process"), ("_workers_2", "--workers 2"), ("_power", '`durability = "power"`')):
        if f"route_floor_p99_ratio{suffix}" in h:
            rows.append(
                (
                    f"/route over /noop at {HEADLINE_RATE}/s, {what}: p99 ratio, p99.9 ratio",
                    str(h[f"route_floor_p99_ratio{suffix}"]),
                    str(h[f"route_floor_p999_ratio{suffix}"]),
                    "≤ 5 at p99" if suffix == "_power" else "≤ 3, ≤ 5",
                )
            )
    litellm = report.get("peers", {}).get("litellm_router", {})
    for strategy in peers.STRATEGIES if litellm and "skipped" not in litellm else ():
        c, choice = litellm[strategy]["completion"], litellm[strategy]["choice"]
        name = strategy.replace("-", "_")
        rows.append(
            (
                f"LiteLLM {litellm['version']} Router `{strategy}`, 5 mocked deployments: completion (µs, p50 / p99);"
                " its choice alone",
                f"{c['p50_us']} / {c['p99_us']}",
                f"{choice['p50_us']} / {choice['p99_us']}",
                "",
            )
        )
        rows.append(
            (
                f"LiteLLM `{strategy}` completion over banditroute's decision: p50 ratio, p99 ratio",
                str(h[f"litellm_{name}_p50_ratio"]),
                str(h[f"litellm_{name}_p99_ratio"]),
                "≥ 50, ≥ 50",
            )
        )
    rows.append(("replay, logpai (decisions/s)", str(h["replay_decisions_per_s"]), "", ""))
    rows.append(("RSS with 1M pending decisions (MiB)", str(h["rss_mib_1m_pending"]), "", "≤ 1,024"))
    m = report["machine"]
    if "speed_probe_ms_at_start" in m:
        rows.append(
            (
                "machine: speed probe at start / end (ms, lower is faster); load average at start / end",
                f"{m['speed_probe_ms_at_start']} / {m['speed_probe_ms_at_end']}",
                f"{m['loadavg_at_start'][0]:.2f} / {m['loadavg_at_end'][0]:.2f}",
                "",
            )
        )
    out = ["| figure | value | second value | target |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {t} |" for a, b, c, t in rows]
    return "\n".join(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=str(ROOT / "data"), help="the bundled data sets")
    p.add_argument("--out", default="bench.json", help="where the JSON report goes")
    p.add_argument("--openloop", default=None, help="the compiled tools/load/openloop.c (default: on PATH)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured per offered load")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    p.add_argument("--saturation-s", type=float, default=10.0, help="seconds of wrk per saturation run")
    p.add_argument("--iterations", type=int, default=20_000, help="timed calls per in-process figure")
    p.add_argument("--memory-routes", type=int, default=1_000_000, help="routes kept pending for the RSS figure")
    p.add_argument("--skip-http", action="store_true", help="in-process figures only")
    p.add_argument("--skip-fleet", action="store_true", help="without the PostgreSQL/SQLite fleet section")
    p.add_argument("--markdown", metavar="BENCH_JSON", help="print the README's table from a report, measure nothing")


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    data = Path(args.data)
    prompts = [r["prompt"] for r in load_rows(data)]
    # The load average says how busy the machine was with other work: tails grow with it.
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "loadavg_at_start": os.getloadavg(),
            "speed_probe_ms_at_start": speed_probe_ms(),
        }
    }
    _progress("in process: featurize, predict, learn, decision")
    report["in_process"] = bench_in_process(prompts, args.iterations)
    _progress("peers: LiteLLM's Router in process")
    report["peers"] = {"litellm_router": peers.bench_litellm_router(prompts, min(args.iterations, PEER_ITERATIONS))}
    _progress("replay over the largest data set")
    report["replay"] = bench_simulate(data)
    if not args.skip_http:
        tool = Path(args.openloop) if args.openloop else Path(shutil.which("openloop") or "openloop")
        report["http"] = bench_http(prompts, tool, args.duration, args.warmup, RATES, args.saturation_s)
        if not args.skip_fleet:
            _progress("fleet: two serving processes on SQLite, then on PostgreSQL")
            report["fleet"] = bench_fleet_phase(prompts, args.saturation_s)
    # Last: the child allocates and frees most of a GiB, and on this virtual machine the next phase
    # ran slower after it (memory given back to the host is faulted in again).
    _progress(f"memory after {args.memory_routes} pending routes")
    report["memory"] = bench_memory(data, args.memory_routes)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    report["machine"]["speed_probe_ms_at_end"] = speed_probe_ms()
    report["headline"] = headline(report)
    Path(args.out).write_text(json.dumps({**report["headline"], **report}, indent=2) + "\n")
    print(table(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="banditroute bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        _memory_child(Path(args.data), args.memory_child)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
