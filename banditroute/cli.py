"""`banditroute serve | simulate | sweep | tune | ope | bench`: one entry point, thin over the library."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from banditroute.config import ConfigError, load_config


def _serve(args: argparse.Namespace) -> int:
    from banditroute import logging as blog
    from banditroute.server import run

    blog.configure(args.log_level)
    config = load_config(args.config)
    server: dict[str, object] = {}
    port = args.port if args.port is not None else os.environ.get("BANDITROUTE_PORT")
    if port is not None:
        server["port"] = int(port)
    if args.host is not None:
        server["host"] = args.host
    if args.data_dir is not None:
        server["data_dir"] = args.data_dir
    if server:
        config = config.with_overrides(server=server)
    if args.workers is not None:
        config = config.with_overrides(cluster={"workers": args.workers})
    if config.cluster.workers > 1:
        from banditroute.cluster import run_cluster

        return run_cluster(config, config.cluster.workers, args.log_level, args.config)
    run(config, args.config)
    return 0


def _judge(args: argparse.Namespace) -> int:
    import asyncio

    from banditroute import logging as blog
    from feedback.judge import serve

    blog.configure(args.log_level)
    config = load_config(args.config)
    if args.data_dir is not None:
        config = config.with_overrides(server={"data_dir": args.data_dir})
    try:
        asyncio.run(serve(config, args.service_url, once=args.once))
    except KeyboardInterrupt:
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="banditroute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the HTTP service")
    serve.add_argument("--config", help="TOML config file (default: the bundled one)")
    serve.add_argument("--port", type=int, help="port (or env BANDITROUTE_PORT; default 8080)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--data-dir", help="where the SQLite log lives (default ./var)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--workers", type=int,
                       help="serving processes sharing the port, plus one learner (default: cluster.workers, 1 = "
                            "one process that serves and learns)")
    serve.set_defaults(func=_serve)
    judge = sub.add_parser("judge", help="run the LLM-as-judge worker over the proxy's sampled events")
    judge.add_argument("--config", help="TOML config file with a [judge] section (default: the bundled one)")
    judge.add_argument("--service-url", help="the banditroute service to post /reward to "
                                             "(default: judge.service_url, else server.host:port)")
    judge.add_argument("--data-dir", help="where the service's SQLite log lives (default: server.data_dir)")
    judge.add_argument("--once", action="store_true", help="judge what is due now, then exit")
    judge.add_argument("--log-level", default="info")
    judge.set_defaults(func=_judge)

    bench = sub.add_parser("bench", help="measure latency, throughput and memory; writes bench.json (make bench)")
    from banditroute import bench as bench_module

    bench_module.add_arguments(bench)
    bench.set_defaults(func=bench_module.run)

    from simulators import commands as offline

    offline.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"banditroute: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
