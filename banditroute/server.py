"""The aiohttp service: parse, validate, call the Service, answer JSON. The one module that knows aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web

from banditroute.api import ApiError, parse_json_object, parse_reward, parse_route
from banditroute.config import Config
from banditroute.guardrails import NoModelAllowed, UnknownModel
from banditroute.service import ReloadError, Service, UnknownEvent
from banditroute.store import StoreError

log = structlog.get_logger("banditroute.server")

SERVICE = web.AppKey("service", Service)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.Response(body=ApiError(status, code, message).body(), status=status, content_type="application/json")


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers `{"error": {...}}`; nothing a client sends can make a handler crash the server."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.Response(body=exc.body(), status=exc.status, content_type="application/json")
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SERVICE].config.server.max_body_bytes
        return error_response(413, "body_too_large", f"the body is larger than the limit of {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(exc.status, code, exc.reason)
    except StoreError as exc:
        log.error("store_unavailable", error=str(exc))
        return error_response(503, "store_unavailable", "the event log cannot be written now; retry later")
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return error_response(500, "internal_error", "internal error; the request was not applied")


async def read_object(request: web.Request) -> dict[str, Any]:
    return parse_json_object(await request.read())


async def route(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    req = parse_route(await read_object(request), service.config.server.max_query_chars)
    if req.escalate_from is not None and not service.config.rules.escalation:
        raise ApiError(400, "escalation_disabled", "escalate_from is turned off (rules.escalation = false)")
    try:
        decision = await service.route(req.query, req.metadata, req.max_output_tokens, req.escalate_from)
    except NoModelAllowed as exc:
        raise ApiError(422, "no_model_allowed", f"{exc} (excluded: {exc.excluded})") from None
    except UnknownModel as exc:
        raise ApiError(400, "invalid_escalate_from", f"escalate_from names no catalog model: {exc}") from None
    return json_response({
        "event_id": decision.event_id,
        "model": decision.model,
        "probability": decision.probability,
        "pmf": dict(zip(decision.models, decision.pmf)),
        "explored": decision.explored,
        "fallbacks": list(decision.fallbacks),
        "excluded": decision.excluded,
        "reason": decision.reason,
    })


async def reward(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    part = parse_reward(await read_object(request), time.time())
    try:
        answer = await service.reward(part)
    except UnknownEvent:
        raise ApiError(404, "unknown_event", "no decision has this event_id") from None
    return json_response(answer, status=202)


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    healthy = service.eventlog is not None and service.eventlog.healthy
    return json_response({"status": "ok" if healthy else "degraded"}, status=200 if healthy else 503)


async def models(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    assert service.router is not None
    return json_response({"models": service.router.catalog.to_json()})


async def stats(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].stats())


async def admin_reload(request: web.Request) -> web.Response:
    """Re-read the configuration file: new catalog and rules at once, the learned policy kept."""
    try:
        summary = request.app[SERVICE].reload()
    except ReloadError as exc:
        raise ApiError(400, "invalid_config", str(exc)) from None
    return json_response({"status": "reloaded", **summary})


def create_app(config: Config, config_path: str | Path | None = None) -> web.Application:
    """The service; `config_path` is the file POST /admin/reload and SIGHUP re-read (None: the bundled one)."""
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=[errors_as_json])
    service = Service(config, config_path=config_path)
    app[SERVICE] = service

    def reload_on_signal() -> None:
        with contextlib.suppress(ReloadError):  # already logged; the running catalog stays
            service.reload()

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await service.start()
        loop = asyncio.get_running_loop()
        hup = _add_signal_handler(loop, reload_on_signal)
        yield
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/route", route)
    app.router.add_post("/reward", reward)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_post("/admin/reload", admin_reload)
    return app


def _add_signal_handler(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> bool:
    """SIGHUP reloads the catalog where the platform and thread allow signal handlers."""
    try:
        loop.add_signal_handler(signal.SIGHUP, callback)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        return False
    return True


def run(config: Config, config_path: str | Path | None = None) -> None:
    web.run_app(create_app(config, config_path), host=config.server.host, port=config.server.port,
                access_log=None, print=lambda *_: None,
                handle_signals=True)
