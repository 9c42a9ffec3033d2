"""The aiohttp service: parse, validate, call the Service, answer JSON. The one module that knows aiohttp."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web

from banditroute.api import ApiError, parse_json_object, parse_reward, parse_route
from banditroute.config import Config
from banditroute.guardrails import NoModelAllowed
from banditroute.service import SINGLE, Service, UnknownEvent
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
    try:
        decision = await service.route(req.query, req.metadata, req.max_output_tokens)
    except NoModelAllowed as exc:
        raise ApiError(422, "no_model_allowed", f"{exc} (excluded: {exc.excluded})") from None
    pmf = dict(zip(decision.models, decision.pmf))
    return json_response({
        "event_id": decision.event_id,
        "model": decision.model,
        "probability": decision.probability,
        "pmf": pmf,
        "explored": decision.explored,
        "fallbacks": sorted((m for m in decision.models if m != decision.model), key=pmf.__getitem__,
                            reverse=True),
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


async def noop(request: web.Request) -> web.Response:
    """The HTTP floor for `make bench`: the same server, body read, a JSON answer, no routing."""
    await request.read()
    return json_response({})


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


def create_app(config: Config, role: str = SINGLE) -> web.Application:
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=[errors_as_json])
    service = Service(config, role=role)
    app[SERVICE] = service

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/route", route)
    app.router.add_post("/reward", reward)
    app.router.add_post("/noop", noop)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/models", models)
    app.router.add_get("/stats", stats)
    return app


def run(config: Config, role: str = SINGLE, reuse_port: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; `reuse_port` lets several serving processes share the port."""
    web.run_app(create_app(config, role), host=config.server.host, port=config.server.port,
                access_log=None, print=lambda *_: None, reuse_port=reuse_port,
                handle_signals=True)
