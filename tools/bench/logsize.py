"""Bytes per decision in the SQLite log, measured on a data set's real prompts.

    python -m tools.bench.logsize --dataset data/routerbench [--decisions N] [--per-day 1000000]

Routes the prompts through a `Router` (the bundled configuration, the data set's catalog) into a
fresh log in a temporary directory, with the two feedback parts a proxied call gets (the system's
latency and tokens, then a quality), so every decision has its parts and its learned row as in
production. Then checkpoints the WAL into the file and prints the file's bytes per decision, the
share of each table and index (SQLite's `dbstat`), and the growth per day at `--per-day` decisions.
A measurement, not a test.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from banditroute.config import load_config
from banditroute.router import MemorySink, Router
from banditroute.store.sqlite import Store
from banditroute.types import FeedbackPart
from simulators.datasets import load_dataset
from simulators.simulate import world_rules
from simulators.worlds import DatasetWorld

_BATCH = 1000  # decisions per commit, about what the writer batches under load
_INTERARRIVAL_S = 0.1


def measure(world: DatasetWorld, decisions: int, config_path: str | None) -> dict[str, object]:
    config = load_config(config_path)
    specs = world.models(0)
    config = replace(config, models=specs, rules=world_rules(config.rules, specs))
    sink = MemorySink()
    router = Router(config, sink=sink)
    parts: list[FeedbackPart] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "banditroute.db"
        store = Store(path)
        for step in range(decisions):
            now = 1.7e9 + step * _INTERARRIVAL_S
            req = world.request(step % len(world))
            decision = router.route(req.query, req.metadata, now=now)
            truth = world.outcome(step % len(world), decision.model)
            for part in (
                FeedbackPart(
                    decision.event_id,
                    now + truth.latency_ms / 1000.0,
                    latency_ms=truth.latency_ms,
                    input_tokens=truth.input_tokens,
                    output_tokens=truth.output_tokens,
                    source="system",
                ),
                FeedbackPart(decision.event_id, now + 5.0, quality=truth.quality, source="user"),
            ):
                parts.append(part)
                router.feedback(part, part.ts)
            if len(sink.decisions) >= _BATCH:
                store.write(sink.decisions, parts, sink.learned_rows)
                sink.decisions, sink.learned_rows, parts = [], [], []
        store.write(sink.decisions, parts, sink.learned_rows)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        tables = dict(store.conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        store.close()
        size = path.stat().st_size
    return {"decisions": decisions, "bytes": size, "tables": tables}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--config")
    p.add_argument("--decisions", type=int, default=20_000)
    p.add_argument("--per-day", type=int, default=1_000_000, help="decisions a day for the growth figure")
    args = p.parse_args()
    world = DatasetWorld(load_dataset(args.dataset), seed=0)
    r = measure(world, args.decisions, args.config)
    n = args.decisions
    per_decision = r["bytes"] / n  # type: ignore[operator]
    print(
        f"{world.name}: {per_decision:.0f} bytes per decision ({n} decisions, 2 feedback parts and 1 learned row each;"
        f" {r['bytes']} bytes); at {args.per_day:,} decisions a day: {per_decision * args.per_day / 1e9:.2f} GB a day"
    )
    tables: dict[str, int] = r["tables"]  # type: ignore[assignment]
    for name, size in sorted(tables.items(), key=lambda kv: -kv[1]):
        if size >= r["bytes"] / 100:  # type: ignore[operator]
            print(f"  {name:32s} {size / n:7.0f} bytes per decision")


if __name__ == "__main__":
    main()
