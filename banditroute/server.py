"""The aiohttp service: parse, validate, call the Service, answer JSON. The one module that knows aiohttp."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
import structlog
from aiohttp import web

from banditroute import openapi, policyfile
from banditroute.adminauth import AdminKey
from banditroute.api import (ApiError, parse_exploration, parse_json_object, parse_reward, parse_route, parse_shadow,
                             parse_weights)
from banditroute.config import Config
from banditroute.guardrails import NoModelAllowed
from banditroute.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from banditroute.service import IncompatiblePolicy, Service, UnknownEvent
from banditroute.store import StoreError

log = structlog.get_logger("banditroute.server")

SERVICE = web.AppKey("service", Service)
ADMIN_KEY = web.AppKey("admin_key", AdminKey)
ADMIN_PREFIX = "/admin/"

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


@web.middleware
async def admin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /admin/ path needs the admin key (see adminauth); the check runs before the body is read."""
    if request.path.startswith(ADMIN_PREFIX):
        request.app[ADMIN_KEY].check(request.headers.get("Authorization"))
    return await handler(request)


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


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


def _page(name: str) -> bytes:
    return resources.files("banditroute").joinpath(f"data/{name}").read_bytes()


async def dashboard(request: web.Request) -> web.Response:
    return web.Response(body=_page("dashboard.html"), content_type="text/html", charset="utf-8")


async def dashboard_data(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].dashboard_data())


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi.document())


async def docs(request: web.Request) -> web.Response:
    return web.Response(body=_page("docs.html"), content_type="text/html", charset="utf-8")


# -- admin ---------------------------------------------------------------------------------------


async def admin_settings(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].settings())


async def admin_weights(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    current = (service.config.reward.cost_weight, service.config.reward.latency_weight)
    cost_weight, latency_weight = parse_weights(await read_object(request), current)
    return json_response(await service.set_weights(cost_weight, latency_weight))


async def admin_exploration(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return json_response(await service.set_exploration(parse_exploration(await read_object(request))))


async def admin_shadow(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    assert service.router is not None
    baseline = parse_shadow(await read_object(request), service.router.catalog.names)
    return json_response(await service.set_shadow(baseline))


async def admin_shadow_summary(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].shadow_summary())


async def admin_snapshot(request: web.Request) -> web.Response:
    ckpt = await request.app[SERVICE].checkpoint(force=True)
    assert ckpt is not None
    return json_response({"learned_seq": ckpt.learned_seq, "sha256": hashlib.sha256(ckpt.model).hexdigest(),
                          "bytes": len(ckpt.model), "ts": ckpt.ts})


async def admin_policy_download(request: web.Request) -> web.Response:
    pf = request.app[SERVICE].policy_file()
    return web.Response(body=pf.dumps(), content_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="banditroute-policy-{pf.sha256[:12]}.json"'})


async def admin_policy_load(request: web.Request) -> web.Response:
    try:
        pf = policyfile.loads(parse_json_object(await request.read()))
        described = await request.app[SERVICE].load_policy(pf)
    except policyfile.PolicyFileError as exc:
        raise ApiError(400, "invalid_policy", str(exc)) from None
    except IncompatiblePolicy as exc:
        raise ApiError(409, "incompatible_policy", str(exc)) from None
    return json_response(described)


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=[errors_as_json, admin_only])
    service = Service(config)
    app[SERVICE] = service
    app[ADMIN_KEY] = AdminKey.from_config(config.admin, os.environ)

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
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard/data", dashboard_data)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
    app.router.add_get("/admin/settings", admin_settings)
    app.router.add_post("/admin/weights", admin_weights)
    app.router.add_post("/admin/exploration", admin_exploration)
    app.router.add_post("/admin/shadow", admin_shadow)
    app.router.add_get("/admin/shadow", admin_shadow_summary)
    app.router.add_post("/admin/snapshot", admin_snapshot)
    app.router.add_get("/admin/policy", admin_policy_download)
    app.router.add_post("/admin/policy", admin_policy_load)
    return app


def run(config: Config) -> None:
    web.run_app(create_app(config), host=config.server.host, port=config.server.port,
                access_log=None, print=lambda *_: None,
                handle_signals=True)
