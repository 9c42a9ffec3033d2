"""The parent of `banditroute serve --workers N`: the Decision Service shape on one machine.

- N serving processes share the port (SO_REUSEPORT). Each decides from a policy snapshot, appends
  its decisions and feedback parts to the shared SQLite log (WAL) and answers only once they are
  committed. A reward may reach any of them: an event another process logged is found in the log.
- One learner process (learner.py) joins, learns and publishes the snapshots they reload within
  `cluster.reload_interval_s`.
- This process supervises: it starts them, restarts one that dies, and stops them on SIGINT/SIGTERM.
  Its children die with it, kill -9 included: each asks the kernel for SIGTERM when its parent dies
  (Linux `PR_SET_PDEATHSIG`) and watches its parent's pid as well (other systems, or a parent gone
  before the request). One learner per log is a lock, not a convention (datadir.LearnerLock).

What a serving child runs is passed in (`serve`): the HTTP server is a layer above this package.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from banditroute.config import Config
from banditroute.service.learner import LOCK_WAIT_S, Learner
from banditroute.store.base import open_store, reward_secret
from banditroute.store.datadir import LearnerRunning
from banditroute.telemetry import logs

log = structlog.get_logger("banditroute.service.supervisor")

_STOP_GRACE_S = 10.0  # how long a child may take to drain before it is killed
_SUPERVISE_S = 0.2  # how often the supervisor checks its children
_PARENT_WATCH_S = 0.5  # how often a child checks that its parent is alive
_PR_SET_PDEATHSIG = 1  # prctl(2)
# A learner that exits with this found another learner on the log: restarting it cannot help.
EXIT_LEARNER_RUNNING = 3

# serve(config, config_path): run one serving process's server until SIGTERM. Picklable (the
# children are spawned): a module-level function, or a functools.partial of one.
Serve = Callable[[Config, str | None], object]


def die_with_parent(parent: int) -> None:
    """SIGTERM to this process when `parent` dies (a graceful stop), and a hard exit if that stop hangs.

    The kernel's PR_SET_PDEATHSIG where there is one; a daemon thread watching the parent pid in any
    case, which also covers a parent that died before the request was made.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_WATCH_S)
        log.error("parent_died", parent=parent, action="stopping")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(_STOP_GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="banditroute-parent-watch", daemon=True).start()


def _learner_main(config: Config, log_level: str, parent: int) -> None:
    logs.configure(log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    die_with_parent(parent)
    try:
        learner = Learner(config, lock_wait_s=LOCK_WAIT_S)
    except LearnerRunning as exc:
        log.error("learner_not_started", reason=str(exc))
        sys.exit(EXIT_LEARNER_RUNNING)
    learner.run(stop)


def _server_main(serve: Serve, config: Config, log_level: str, config_path: str | None, parent: int) -> None:
    logs.configure(log_level)
    die_with_parent(parent)
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
    me = os.getpid()
    targets: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
        **({"learner": (_learner_main, (config, log_level, me))} if learner else {}),
        **{f"server-{i}": (_server_main, (serve, config, log_level, config_path, me)) for i in range(workers)},
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
    status = 0
    while not stop.wait(_SUPERVISE_S):
        for name, proc in list(children.items()):
            if proc.is_alive():
                continue
            if name == "learner" and proc.exitcode == EXIT_LEARNER_RUNNING:
                log.error("cluster_stopping", reason="another process learns from this log (see learner_not_started)")
                status = 1
                stop.set()
                break
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
    return status
