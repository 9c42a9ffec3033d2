"""Around every handler: errors as JSON, the auth gate and body limits; reading a JSON body; the gate itself."""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

import orjson
import structlog
from aiohttp import web

from banditroute.api.requests import ApiError, parse_json_object
from banditroute.auth import ADMIN_KEY_ENV, Gate, admin_keys, auth_enabled
from banditroute.config import Config, ConfigError
from banditroute.http.state import GATE, SERVICE, Handler
from banditroute.store.sqlite import StoreError
from banditroute.store.writer import Overloaded

log = structlog.get_logger("banditroute.http.middleware")

# Seconds a client is asked to wait after a 503 for an overloaded or failing event log.
_RETRY_AFTER_STORE_S = 1


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str, retry_after_s: float = 0.0) -> web.Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))} if retry_after_s > 0 else None
    return web.Response(
        body=ApiError(status, code, message).body(), status=status, content_type="application/json", headers=headers
    )


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
        response = error_response(exc.status, code, exc.reason)
        if "Allow" in exc.headers:  # a 405 names the methods the path does take (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Overloaded as exc:
        log.warning("overloaded", error=str(exc))
        return error_response(503, "overloaded", "too many writes are waiting; retry shortly", _RETRY_AFTER_STORE_S)
    except StoreError as exc:
        log.error("store_unavailable", error=str(exc))
        return error_response(
            503, "store_unavailable", "the event log cannot be written now; retry later", _RETRY_AFTER_STORE_S
        )
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


def create_gate(config: Config, environ: Any = os.environ) -> Gate:
    """The one auth mechanism: [auth] keys (and env keys merged into them) plus the [admin] key."""
    a = config.auth
    enabled = auth_enabled(a, config.server.host)
    keys = a.keys + admin_keys(config.admin.key_sha256, environ.get(ADMIN_KEY_ENV))
    if enabled and not keys:
        raise ConfigError(
            f'auth is on (host {config.server.host} is not loopback, or auth.mode = "on") but no API key is set:'
            ' add [auth].keys or BANDITROUTE_API_KEYS, or set auth.mode = "off" to run open on purpose'
        )
    return Gate(keys, enabled, a.route_rate_per_s, a.reward_rate_per_s, a.rate_burst_s, a.rate_max_clients)
