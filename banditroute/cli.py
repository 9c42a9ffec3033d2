"""The `banditroute` command: one entry point, thin over the library (`banditroute --help` lists the commands)."""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path

import orjson

from banditroute import __version__
from banditroute.auth import parse_env_keys
from banditroute.config import (
    ConfigError,
    ServerConfig,
    config_path,
    environment_server,
    load_config,
    with_environment,
)
from banditroute.evals import EvalsError
from banditroute.store.base import is_postgres
from banditroute.store.sqlite import Store, StoreError

API_KEYS_ENV = "BANDITROUTE_API_KEYS"
COMMANDS_GROUP = "banditroute.commands"


class CliError(Exception):
    """A problem the user can fix (a missing file, an unreachable server); printed, exit status 2."""


def _store(db: str) -> Store:
    if not Path(db).is_file():
        raise CliError(f"no log at {db}")
    return Store(db)


def _stats(args: argparse.Namespace) -> int:
    if args.db:
        store = _store(args.db)
        try:
            out = {
                **store.counts(),
                "selection_counts": store.selection_counts(),
                "config_changes": len(store.config_changes()),
            }
        finally:
            store.close()
    else:
        url = (args.url or server_url()).rstrip("/") + "/stats"
        try:
            with urllib.request.urlopen(url, timeout=args.timeout) as resp:
                out = orjson.loads(resp.read())
        except (urllib.error.URLError, OSError) as exc:
            raise CliError(f"cannot read {url}: {exc}") from None
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    return 0


def server_url(environ: Mapping[str, str] = os.environ) -> str:
    """Where a client command finds the server: `BANDITROUTE_HOST` and `BANDITROUTE_PORT` over the defaults,
    as `serve` reads them (a server bound to every address is reached on loopback)."""
    server = replace(ServerConfig(), **environment_server(environ))
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(server.host, server.host)
    return f"http://[{host}]:{server.port}" if ":" in host else f"http://{host}:{server.port}"


def _init(args: argparse.Namespace) -> int:
    from banditroute.config.starter import starter_config

    providers = [p.strip() for p in args.providers.split(",") if p.strip()] if args.providers else []
    text = starter_config(providers, version=__version__)
    out = Path(args.out)
    try:
        with out.open("w" if args.force else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise CliError(f"{out} exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {out}; start it with: banditroute serve --config {out}", file=sys.stderr)
    return 0


def _export_log(args: argparse.Namespace) -> int:
    from banditroute.retrain import export_row

    store = _store(args.db)
    out = open(args.out, "wb") if args.out != "-" else sys.stdout.buffer  # noqa: SIM115 (closed below)
    n = 0
    try:
        for decision, learned, parts in store.joined_log():
            out.write(orjson.dumps(export_row(decision, learned, parts)) + b"\n")
            n += 1
    finally:
        store.close()
        if out is not sys.stdout.buffer:
            out.close()
    print(f"exported {n} decisions", file=sys.stderr)
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from banditroute.retrain import retrain
    from banditroute.snapshot import PolicyFile

    config = load_config(config_path(args.config))
    cost_weight = args.cost_weight if args.cost_weight is not None else config.reward.cost_weight
    latency_weight = args.latency_weight if args.latency_weight is not None else config.reward.latency_weight
    store = _store(args.db)
    try:
        result = retrain(config, store.joined_log(), cost_weight, latency_weight)
    finally:
        store.close()
    pf = PolicyFile(
        result.policy.args,
        result.policy.serialize(),
        result.last_seq,
        cost_weight,
        latency_weight,
        time.time(),
        "replay-log",
    )
    Path(args.out).write_bytes(pf.dumps())
    print(
        orjson.dumps(
            {
                "out": args.out,
                "learned": result.learned,
                "skipped": result.skipped,
                "unknown_model": result.unknown_model,
                **pf.describe(),
            }
        ).decode()
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from banditroute.http.app import BindError, bind, run
    from banditroute.telemetry import logs

    logs.configure(args.log_level)
    path = config_path(args.config)
    config = with_environment(load_config(path))  # flag > environment > file > default
    server: dict[str, object] = {}
    if args.port is not None:
        server["port"] = args.port
    if args.host is not None:
        server["host"] = args.host
    if args.data_dir is not None:
        server["data_dir"] = args.data_dir
    sections: dict[str, dict[str, object]] = {"server": server} if server else {}
    env_keys = os.environ.get(API_KEYS_ENV)
    if env_keys:
        sections["auth"] = {"keys": config.auth.keys + parse_env_keys(env_keys, API_KEYS_ENV)}
    if sections:
        config = config.with_overrides(**sections)
    if args.workers is not None:
        config = config.with_overrides(cluster={"workers": args.workers})
    if args.store is not None:
        config = config.with_overrides(store={"url": args.store})
    if args.no_learner:
        config = config.with_overrides(cluster={"learner": False})
    try:
        if is_postgres(config.store.url):
            from banditroute.service.host import HostService

            if config.cluster.workers > 1:  # each process a host of the fleet: serves, and may be elected learner
                from banditroute.service.supervisor import run_cluster

                for sock in bind(config.server.host, config.server.port, reuse_port=True):
                    sock.close()
                serve = functools.partial(run, kind=HostService, reuse_port=True)
                return run_cluster(config, config.cluster.workers, args.log_level, path, serve=serve, learner=False)
            return run(config, path, kind=HostService)
        if config.cluster.workers > 1:
            from banditroute.service.serving import ServingService
            from banditroute.service.supervisor import run_cluster

            for sock in bind(config.server.host, config.server.port, reuse_port=True):  # busy: say so once, here
                sock.close()
            serve = functools.partial(run, kind=ServingService, reuse_port=True)
            return run_cluster(config, config.cluster.workers, args.log_level, path, serve=serve)
        return run(config, path)
    except BindError as exc:
        raise CliError(str(exc)) from None


def _warmstart(args: argparse.Namespace) -> int:
    """Train a policy on an eval sample (every model's outcome per prompt) and write it as a policy file."""
    from banditroute.evals import read_evals
    from banditroute.features import word_key
    from banditroute.router import Router
    from banditroute.snapshot import PolicyFile
    from banditroute.store.datadir import load_or_create_secret, secret_path

    config = load_config(config_path(args.config))
    if args.cost_weight is not None or args.latency_weight is not None:
        config = config.with_overrides(
            reward={
                "cost_weight": config.reward.cost_weight if args.cost_weight is None else args.cost_weight,
                "latency_weight": config.reward.latency_weight if args.latency_weight is None else args.latency_weight,
            }
        )
    examples = read_evals(args.evals, limit=args.limit, with_task=args.with_task)
    # The word tokens of the service that will load the policy: its data directory's key.
    data_dir = args.data_dir if args.data_dir is not None else config.server.data_dir
    secret = load_or_create_secret(secret_path(data_dir))
    router = Router(config, word_key=word_key(secret))
    named = {m for ex in examples for m in ex.outcomes}
    unknown = sorted(named - set(router.catalog.names))
    if len(unknown) == len(named):
        raise CliError(f"none of the eval sample's models is in the catalog ({', '.join(unknown[:5])}, ...)")
    report = router.warmstart(examples)
    weights = config.reward.weights
    pf = PolicyFile(
        router.policy.args,
        router.policy.serialize(),
        0,
        weights.cost_weight,
        weights.latency_weight,
        time.time(),
        "warmstart",
    )
    Path(args.out).write_bytes(pf.dumps())
    summary = {
        "out": args.out,
        "examples": report.examples,
        "updates": report.updates,
        "baseline": report.baseline,
        "mean_reward": {m: round(v, 6) for m, v in sorted(report.mean_reward.items())},
        "not_in_catalog": unknown,
    }
    print(orjson.dumps(summary).decode())
    return 0


def _prune(args: argparse.Namespace) -> int:
    """Apply the retention (`store.retention_days`, or --days) to a log now, as the service does periodically."""
    from banditroute import live, retention
    from banditroute.store.datadir import db_path

    config = load_config(args.config)
    days = args.days if args.days is not None else config.store.retention_days
    if not days > 0:
        raise CliError("nothing to prune: store.retention_days is 0 (keep everything); pass --days N")
    now = time.time()
    before = retention.horizon(now, days, live.Spend(config.rules.budget_period_s, {}).period_start(now))
    assert before is not None
    store = _store(args.db or str(db_path(config.server.data_dir)))
    try:
        done = store.prune(before)
    finally:
        store.close()
    summary = {
        "before": before,
        "decisions": done.decisions,
        "feedback_parts": done.feedback_parts,
        "learned": done.learned,
        "covered_seq": done.covered_seq,
    }
    print(orjson.dumps(summary).decode())
    return 0


def _config(args: argparse.Namespace) -> int:
    from banditroute.config.reference import render_reference

    sys.stdout.write(render_reference())
    return 0


def _bench(argv: list[str]) -> int:
    """`banditroute bench` runs a source checkout's tools/bench as a program: the benchmark is not
    installed, and the library never imports the development tools."""
    if not Path("tools/bench/harness.py").is_file():
        raise CliError("the benchmark is a development tool: run `make bench` in a source checkout")
    return subprocess.call([sys.executable, "-m", "tools.bench.harness", *argv])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="banditroute", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the HTTP service")
    serve.add_argument(
        "--config", help="TOML file, read over the bundled one (or env BANDITROUTE_CONFIG; default: the bundled one)"
    )
    serve.add_argument("--port", type=int, help="port (or env BANDITROUTE_PORT; default server.port, 8080)")
    serve.add_argument("--host", help="address to bind (or env BANDITROUTE_HOST; default server.host, 127.0.0.1)")
    serve.add_argument(
        "--data-dir", help="where the SQLite log lives (or env BANDITROUTE_DATA_DIR; default server.data_dir, ./var)"
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--workers",
        type=int,
        help="serving processes sharing the port, plus one learner (default: cluster.workers, 1 = "
        "one process that serves and learns)",
    )
    serve.add_argument(
        "--store",
        metavar="URL",
        help='the log: "postgresql://…" for a fleet of hosts sharing one database (default: store.url, empty = '
        "the SQLite file in the data directory)",
    )
    serve.add_argument(
        "--no-learner", action="store_true", help="with a PostgreSQL store: never be elected the fleet's learner"
    )
    serve.set_defaults(func=_serve)

    stats = sub.add_parser("stats", help="counts of a running server (--url) or of a log file (--db)")
    where = stats.add_mutually_exclusive_group()
    where.add_argument(
        "--url", help="the server (default: http://BANDITROUTE_HOST:BANDITROUTE_PORT, else http://127.0.0.1:8080)"
    )
    where.add_argument("--db", help="a SQLite log (e.g. var/banditroute.db) instead of a server")
    stats.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    stats.set_defaults(func=_stats)

    init = sub.add_parser("init", help="write a starter config that `serve --config` accepts")
    init.add_argument(
        "--providers",
        help="comma-separated provider catalogs to route to instead of the bundled catalog: "
        "openai, anthropic, local (ollama, vllm), aggregator (openrouter)",
    )
    init.add_argument("--out", default="banditroute.toml", help="the file to write (default %(default)s)")
    init.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    init.set_defaults(func=_init)

    export = sub.add_parser("export-log", help="the log as JSON lines: decisions with feedback and learned rewards")
    export.add_argument("--db", default="var/banditroute.db", help="the SQLite log (default %(default)s)")
    export.add_argument("--out", default="-", help="output file (default: stdout)")
    export.set_defaults(func=_export_log)

    replay = sub.add_parser("retrain", aliases=["replay-log"], help="retrain a policy from the log under given weights")
    replay.add_argument("--db", default="var/banditroute.db", help="the SQLite log (default %(default)s)")
    replay.add_argument(
        "--config", help="TOML config (catalog, policy arguments; or env BANDITROUTE_CONFIG; default: the bundled one)"
    )
    replay.add_argument("--cost-weight", type=float, help="cost_weight to learn under (default: the config's)")
    replay.add_argument("--latency-weight", type=float, help="latency_weight to learn under (default: the config's)")
    replay.add_argument("--out", required=True, help="the policy file to write (POST it to /admin/policy)")
    replay.set_defaults(func=_retrain)

    warm = sub.add_parser(
        "warmstart", help="train a policy on an eval sample (every model's outcome per prompt); writes a policy file"
    )
    warm.add_argument("--evals", required=True, help="a folder (or .jsonl[.gz] file) in the data/README.md format")
    warm.add_argument(
        "--config", help="TOML config (catalog, policy, reward; or env BANDITROUTE_CONFIG; default: the bundled one)"
    )
    warm.add_argument("--cost-weight", type=float, help="cost_weight to learn under (default: the config's)")
    warm.add_argument("--latency-weight", type=float, help="latency_weight to learn under (default: the config's)")
    warm.add_argument("--limit", type=int, help="use the first N prompts only")
    warm.add_argument("--with-task", action="store_true", help="pass each prompt's task label as metadata.task")
    warm.add_argument("--out", required=True, help="the policy file to write (POST it to /admin/policy)")
    warm.add_argument(
        "--data-dir", help="the data directory of the service that will load it (its word key; default server.data_dir)"
    )
    warm.set_defaults(func=_warmstart)

    prune = sub.add_parser(
        "prune", help="remove events older than store.retention_days that a checkpoint covers (the service does it too)"
    )
    prune.add_argument("--config", help="TOML config (store.retention_days, server.data_dir; default: the bundled one)")
    prune.add_argument("--db", help="the SQLite log (default: banditroute.db in server.data_dir)")
    prune.add_argument("--days", type=float, help="retention in days instead of store.retention_days")
    prune.set_defaults(func=_prune)

    config = sub.add_parser("config", help="the configuration reference, generated from the keys' definitions")
    config.add_argument(
        "--reference", action="store_true", required=True, help="print it as Markdown (docs/configuration.md)"
    )
    config.set_defaults(func=_config)

    sub.add_parser("bench", help="the development benchmark (make bench): needs a source checkout")

    # Commands that live outside the library (the offline simulators, the judge worker) register
    # themselves through an entry point, so the library never imports them.
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        entry.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["bench"]:  # its arguments are the harness's own
            return _bench(argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except (ConfigError, StoreError, CliError, EvalsError) as exc:
        print(f"banditroute: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
