"""The core routes: / /route /reward /healthz /models /stats /metrics /dashboard /docs /noop (parse, call, answer)."""

from __future__ import annotations

import time
from importlib import resources

from aiohttp import web

from banditroute import __version__
from banditroute.api import index as index_page
from banditroute.api import openapi
from banditroute.api.requests import ApiError, parse_reward, parse_reward_token, parse_route
from banditroute.http.middleware import json_response, read_object
from banditroute.http.state import SERVICE
from banditroute.rules import NoModelAllowed, UnknownModel
from banditroute.service.base import RewardRefused, UnknownEvent
from banditroute.telemetry.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE


async def route(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    req = parse_route(await read_object(request), service.config.server.max_query_chars)
    if req.escalate_from is not None and not service.config.rules.escalation:
        raise ApiError(400, "escalation_disabled", "escalate_from is turned off (rules.escalation = false)")
    try:
        decision = await service.route(req.query, req.metadata, req.max_output_tokens, escalate_from=req.escalate_from)
    except NoModelAllowed as exc:
        raise ApiError(422, "no_model_allowed", f"{exc} (excluded: {exc.excluded})") from None
    except UnknownModel as exc:
        raise ApiError(400, "invalid_escalate_from", f"escalate_from names no catalog model: {exc}") from None
    return json_response(
        {
            "event_id": decision.event_id,
            "model": decision.model,
            "probability": decision.probability,
            "pmf": dict(zip(decision.models, decision.pmf)),
            "explored": decision.explored,
            "fallbacks": list(decision.fallbacks),
            "excluded": decision.excluded,
            "reason": decision.reason,
            "reward_token": service.reward_token(decision),
        }
    )


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


async def noop(request: web.Request) -> web.Response:
    """The HTTP floor for `make bench`: the same server, body read, a JSON answer, no routing."""
    await request.read()
    return json_response({})


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    healthy = service.store_healthy
    return json_response({"status": "ok" if healthy else "degraded"}, status=200 if healthy else 503)


async def models(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
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


async def index(request: web.Request) -> web.Response:
    """Links to the docs, the dashboard, the OpenAPI document, health; JSON, or HTML for a browser."""
    if index_page.prefers_html(request.headers.get("Accept", "")):
        return web.Response(text=index_page.index_html(__version__), content_type="text/html", charset="utf-8")
    return json_response(index_page.index(__version__))
