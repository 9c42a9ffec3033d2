"""The aiohttp service: parse, validate, call the Service, answer JSON. The one module that knows aiohttp."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web

from banditroute.api import ApiError, parse_json_object, parse_reward, parse_reward_token, parse_route
from banditroute.auth import Gate
from banditroute.config import Config, ConfigError
from banditroute.eventlog import Overloaded
from banditroute.guardrails import NoModelAllowed
from banditroute.service import RewardRefused, Service, UnknownEvent
from banditroute.store import StoreError

log = structlog.get_logger("banditroute.server")

SERVICE = web.AppKey("service", Service)
GATE = web.AppKey("gate", Gate)
# Seconds a client is asked to wait after a 503 for an overloaded or failing event log.
_RETRY_AFTER_STORE_S = 1

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str, retry_after_s: float = 0.0) -> web.Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))} if retry_after_s > 0 else None
    return web.Response(body=ApiError(status, code, message).body(), status=status, content_type="application/json",
                        headers=headers)


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
    except Overloaded as exc:
        log.warning("overloaded", error=str(exc))
        return error_response(503, "overloaded", "too many writes are waiting; retry shortly", _RETRY_AFTER_STORE_S)
    except StoreError as exc:
        log.error("store_unavailable", error=str(exc))
        return error_response(503, "store_unavailable", "the event log cannot be written now; retry later",
                              _RETRY_AFTER_STORE_S)
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return error_response(500, "internal_error", "internal error; the request was not applied")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Before any body is read: API key, scope and rate limit, then the declared body size."""
    verdict = request.app[GATE].check(request.path, request.headers.get("Authorization"), time.monotonic())
    if verdict.status:
        response = error_response(verdict.status, verdict.code, verdict.message, verdict.retry_after_s)
        if verdict.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    limit = request.app[SERVICE].config.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return error_response(413, "body_too_large", f"the body is larger than the limit of {limit} bytes")
    return await handler(request)


async def read_object(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body, which must arrive within `server.read_timeout_s` (else 408)."""
    timeout = request.app[SERVICE].config.server.read_timeout_s
    try:
        async with asyncio.timeout(timeout):
            body = await request.read()
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"the body did not arrive within {timeout:g} s") from None
    return parse_json_object(body)


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
        "reward_token": service.reward_token(decision),
    })


async def reward(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await read_object(request)
    part = parse_reward(body, time.time())
    try:
        answer = await service.reward(part, parse_reward_token(body))
    except UnknownEvent:
        raise ApiError(404, "unknown_event", "no decision has this event_id") from None
    except RewardRefused as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
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


def create_gate(config: Config) -> Gate:
    a = config.auth
    enabled = a.enabled(config.server.host)
    if enabled and not a.keys:
        raise ConfigError(
            f"auth is on (host {config.server.host} is not loopback, or auth.mode = \"on\") but no API key is set:"
            " add [auth].keys or BANDITROUTE_API_KEYS, or set auth.mode = \"off\" to run open on purpose")
    return Gate(a.keys, enabled, a.route_rate_per_s, a.reward_rate_per_s, a.rate_burst_s, a.rate_max_clients)


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=[errors_as_json, guard],
                          handler_args={"max_headers": config.server.max_headers})
    service = Service(config)
    app[SERVICE] = service
    app[GATE] = create_gate(config)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/route", route)
    app.router.add_post("/reward", reward)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/models", models)
    app.router.add_get("/stats", stats)
    return app


def run(config: Config) -> None:
    web.run_app(create_app(config), host=config.server.host, port=config.server.port,
                access_log=None, print=lambda *_: None,
                handle_signals=True)
