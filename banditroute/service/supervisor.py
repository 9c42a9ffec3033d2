"""The parent of `banditroute serve --workers N`: the Decision Service shape on one machine.

- N serving processes share the port (SO_REUSEPORT). Each decides from a policy snapshot, appends
  its decisions and feedback parts to the shared SQLite log (WAL) and answers only once they are
  committed. A reward may reach any of them: an event another process logged is found in the log.
- One learner process (learner.py) joins, learns and publishes the snapshots they reload within
  `cluster.reload_interval_s`.
- This process supervises: it starts them, restarts one that dies, and stops them on SIGINT/SIGTERM.

What a serving child runs is passed in (`serve`): the HTTP server is a layer above this package.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from banditroute.config import Config
from banditroute.service.learner import Learner
from banditroute.store.base import open_store, reward_secret
from banditroute.telemetry import logs

log = structlog.get_logger("banditroute.service.supervisor")

_STOP_GRACE_S = 10.0  # how long a child may take to drain before it is killed
_SUPERVISE_S = 0.2  # how often the supervisor checks its children

# serve(config, config_path): run one serving process's server until SIGTERM. Picklable (the
# children are spawned): a module-level function, or a functools.partial of one.
Serve = Callable[[Config, str | None], object]


def _learner_main(config: Config, log_level: str) -> None:
    logs.configure(log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Learner(config).run(stop)


def _server_main(serve: Serve, config: Config, log_level: str, config_path: str | None) -> None:
    logs.configure(log_level)
    serve(config, config_path)


def run_cluster(
    config: Config,
    workers: int,
    log_level: str = "info",
    config_path: str | None = None,
    *,
    serve: Serve,
    learner: bool = True,
) -> int:
    """Start the learner and `workers` serving processes; supervise them until SIGINT/SIGTERM.

    `learner=False`: no learner process (on PostgreSQL the serving processes elect one among the fleet).
    """
    store = open_store(config)  # the schema, once, before the children race
    try:
        reward_secret(config, store, os.environ)  # and the secret (tokens, word key) they all read
    finally:
        store.close()
    ctx = multiprocessing.get_context("spawn")
    targets: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
        **({"learner": (_learner_main, (config, log_level))} if learner else {}),
        **{f"server-{i}": (_server_main, (serve, config, log_level, config_path)) for i in range(workers)},
    }
    children: dict[str, Any] = {}

    def start(name: str) -> None:
        target, args = targets[name]
        proc = ctx.Process(target=target, args=args, name=f"banditroute-{name}", daemon=False)
        proc.start()
        children[name] = proc

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for name in targets:
        start(name)
    log.info(
        "cluster_started",
        workers=workers,
        port=config.server.port,
        pids={name: proc.pid for name, proc in children.items()},
    )
    while not stop.wait(_SUPERVISE_S):
        for name, proc in list(children.items()):
            if not proc.is_alive():
                log.error("child_died_restarting", child=name, exitcode=proc.exitcode)
                start(name)
    for proc in children.values():
        proc.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in children.values():
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
    log.info("cluster_stopped")
    return 0
