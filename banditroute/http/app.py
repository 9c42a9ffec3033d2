"""The aiohttp app: the route table and the lifecycle that starts and stops the Service; `run` serves it.

The handlers live by concern in `handlers.py`, `admin.py` and `proxy.py`, what runs around them in
`middleware.py`, the app's typed keys in `state.py`. `banditroute.http` is the one place that knows
aiohttp's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from banditroute.config import Config
from banditroute.http import admin, handlers, proxy
from banditroute.http.middleware import create_gate, errors_as_json, guard
from banditroute.http.protocol import Runner
from banditroute.http.state import BOOKKEEPING, GATE, SERVICE, UPSTREAM
from banditroute.http.upstream import Timeouts, Upstream
from banditroute.service.base import Service
from banditroute.service.controls import ReloadError
from banditroute.service.single import LearningService

__all__ = ["SERVICE", "BindError", "create_app", "run"]

log = structlog.get_logger("banditroute.http.app")


class BindError(Exception):
    """The address cannot be bound (in use, not ours, unknown): said in one line, before anything starts."""


def create_app(
    config: Config, config_path: str | Path | None = None, kind: type[Service[Any]] = LearningService
) -> web.Application:
    """The service; `config_path` is the file POST /admin/reload and SIGHUP re-read (None: the bundled one).

    `kind`: LearningService serves and learns; ServingService is a serving process of `serve --workers N`.
    """
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[errors_as_json, guard],
        handler_args={"max_headers": config.server.max_headers},
    )
    app[GATE] = create_gate(config)
    upstream = Upstream(
        Timeouts(config.proxy.connect_timeout_s, config.proxy.read_timeout_s, config.proxy.max_connections)
    )
    app[UPSTREAM] = upstream
    app[BOOKKEEPING] = set()

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        service = app[SERVICE] = await kind.open(config, config_path=config_path)

        def reload_on_signal() -> None:
            with contextlib.suppress(ReloadError):  # already logged; the running catalog stays
                service.reload()

        await upstream.start()
        loop = asyncio.get_running_loop()
        hup = _add_signal_handler(loop, reload_on_signal)
        yield
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
        await upstream.close()
        await asyncio.gather(*app[BOOKKEEPING], return_exceptions=True)
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", handlers.index)
    app.router.add_post("/route", handlers.route)
    app.router.add_post("/reward", handlers.reward)
    app.router.add_post("/noop", handlers.noop)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/models", handlers.models)
    app.router.add_get("/stats", handlers.stats)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/dashboard", handlers.dashboard)
    app.router.add_get("/dashboard/data", handlers.dashboard_data)
    app.router.add_get("/openapi.json", handlers.openapi_json)
    app.router.add_get("/docs", handlers.docs)
    app.router.add_get("/admin/settings", admin.admin_settings)
    app.router.add_post("/admin/weights", admin.admin_weights)
    app.router.add_post("/admin/exploration", admin.admin_exploration)
    app.router.add_post("/admin/shadow", admin.admin_shadow)
    app.router.add_get("/admin/shadow", admin.admin_shadow_summary)
    app.router.add_post("/admin/snapshot", admin.admin_snapshot)
    app.router.add_get("/admin/policy", admin.admin_policy_download)
    app.router.add_post("/admin/policy", admin.admin_policy_load)
    app.router.add_post("/admin/reload", admin.admin_reload)
    app.router.add_post("/v1/chat/completions", proxy.chat_completions)
    app.router.add_get("/v1/models", proxy.v1_models)
    return app


def _add_signal_handler(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> bool:
    """SIGHUP reloads the catalog where the platform and thread allow signal handlers."""
    try:
        loop.add_signal_handler(signal.SIGHUP, callback)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        return False
    return True


def run(
    config: Config,
    config_path: str | Path | None = None,
    kind: type[Service[Any]] = LearningService,
    reuse_port: bool = False,
) -> int:
    """Serve until SIGINT/SIGTERM; `reuse_port` lets several serving processes share the port.

    The address is bound first: a busy port raises BindError before the log is opened. `started`,
    with the URL, is logged once the server accepts connections.
    """
    host, port = config.server.host, config.server.port
    sockets = bind(host, port, reuse_port)
    app = create_app(config, config_path, kind)

    def started() -> None:  # once the sites listen
        urls = [_url(host or s.getsockname()[0], s.getsockname()[1]) for s in sockets]
        service = app[SERVICE]
        log.info("started", url=urls[0], urls=urls, auth=service.auth_summary(), db=str(service.db_path))

    try:
        asyncio.run(_serve(app, sockets, started))
    finally:
        for s in sockets:
            s.close()
    return 0


async def _serve(app: web.Application, sockets: list[socket.socket], started: Callable[[], None]) -> None:
    """aiohttp's run_app, with the connections of protocol.Runner (parser errors as JSON, not logged)."""
    runner = Runner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        started()
        await stop.wait()
    finally:
        await runner.cleanup()


def bind(host: str, port: int, reuse_port: bool = False) -> list[socket.socket]:
    """Bound (not yet listening) sockets for every address `host` resolves to, or BindError."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot bind {host}:{port}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:  # a family this host lacks (IPv6 for "localhost"): as asyncio, skip it
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does on POSIX
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            if port == 0:  # an ephemeral port: one address, or each would get another port
                break
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise BindError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    if not sockets:
        raise BindError(f"cannot bind {host}:{port}: no address family of it is available here")
    return sockets


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
