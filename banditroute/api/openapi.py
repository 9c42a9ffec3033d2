"""The OpenAPI 3.1 document of the HTTP API, built in code next to what it describes.

`tests/api/test_openapi.py` checks that every route the app serves is described here (and
nothing else), and validates real responses of a running server against these schemas, so the
document cannot drift from the code unnoticed. Served at `GET /openapi.json`; `GET /docs` renders it.
"""

from __future__ import annotations

from typing import Any

from banditroute.api.schemas import JSON, SCHEMAS, STRING, ref
from banditroute.auth import ADMIN_PREFIX, required_scope


def _json(schema: str) -> dict[str, Any]:
    return {"content": {JSON: {"schema": ref(schema)}}}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, **_json(schema)}


def _errors(*statuses: int, schema: str = "Error") -> dict[str, Any]:
    what = {
        400: "invalid request",
        401: "no valid API key (or reward_token) presented",
        403: "the key's scopes do not cover this endpoint, a wrong reward_token, or admin endpoints disabled",
        404: "unknown",
        408: "the body did not arrive in time",
        409: "conflicts with the running configuration (or too many feedback parts for the event)",
        413: "too large",
        422: "no model is allowed for this request",
        429: "rate limit of the API key; see Retry-After",
        502: "no upstream answered (errors)",
        503: "the event log cannot be written now or its queue is full; see Retry-After",
        504: "no upstream answered in time",
    }
    return {str(s): _answer(what[s], schema) for s in statuses}


def _op(summary: str, responses: dict[str, Any], *, body: str | None = None, tag: str = "routing") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def _secured(path: str, op: dict[str, Any]) -> dict[str, Any]:
    """Security and auth errors from the one place that decides them (auth.required_scope).

    Operator endpoints always need an admin key; the others only when auth is on (so the key is
    optional in the document: `{}` is the no-key alternative of a loopback development server).
    """
    scope = required_scope(path)
    if scope is None:
        return op
    limited = (429,) if scope in ("route", "reward") else ()
    extra = {"408": _answer("the body did not arrive in time", "Error")} if "requestBody" in op else {}
    return {
        **op,
        "description": f"Needs an API key with scope `{scope}`"
        + ("." if path.startswith(ADMIN_PREFIX) else " when auth is on."),
        "security": [{"apiKey": []}] if path.startswith(ADMIN_PREFIX) else [{"apiKey": []}, {}],
        "responses": {**op["responses"], **_errors(401, 403, *limited), **extra},
    }


def _text(description: str, media: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": STRING}}}


PATHS: dict[str, Any] = {
    "/route": {
        "post": _op(
            "Choose a model for one request",
            {"200": _answer("the decision, committed to the log", "RouteResponse"), **_errors(400, 413, 422, 503)},
            body="RouteRequest",
        )
    },
    "/reward": {
        "post": _op(
            "Report feedback for an event (one part of it)",
            {"202": _answer("the part is durably stored", "RewardResponse"), **_errors(400, 404, 409, 413, 503)},
            body="RewardRequest",
        )
    },
    "/v1/chat/completions": {
        "post": _op(
            "OpenAI-compatible proxy: route, forward with fallbacks, learn",
            {
                "200": {
                    "description": "the upstream's chat completion (headers x-banditroute-event-id and "
                    "x-banditroute-model name the event and the model that answered)",
                    "content": {JSON: {"schema": {"type": "object"}}, "text/event-stream": {"schema": STRING}},
                },
                **_errors(400, 404, 413, 422, 502, 504, schema="ProxyError"),
                "default": {
                    "description": "an upstream's own error answer, passed through",
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
            },
            body="ChatCompletionRequest",
            tag="proxy",
        )
    },
    "/v1/models": {
        "get": _op(
            "The models a proxy client may name",
            {"200": _answer('"auto", the profiles, then the catalog', "ModelList")},
            tag="proxy",
        )
    },
    "/noop": {
        "post": {
            **_op(
                "The HTTP floor for `make bench`: reads the body, answers {}, routes nothing",
                {"200": {"description": "an empty object", "content": {JSON: {"schema": {"type": "object"}}}}},
                tag="operate",
            ),
            "requestBody": {"required": False, "content": {JSON: {"schema": {}}}},
        }
    },
    "/": {
        "get": _op(
            "Where to start: links to /docs, /dashboard, /openapi.json, /healthz; the version",
            {
                "200": {
                    "description": "JSON; a small HTML page when Accept prefers text/html",
                    "content": {JSON: {"schema": ref("Index")}, "text/html": {"schema": STRING}},
                }
            },
            tag="operate",
        )
    },
    "/healthz": {
        "get": _op(
            "Liveness and log health",
            {"200": _answer("healthy", "Health"), "503": _answer("the log cannot be written", "Health")},
            tag="operate",
        )
    },
    "/models": {"get": _op("The model catalog", {"200": _answer("every configured model", "Models")}, tag="operate")},
    "/stats": {
        "get": _op("Counters since the log began", {"200": _answer("counts and settings", "Stats")}, tag="operate")
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics", {"200": _text("Prometheus text exposition format 0.0.4", "text/plain")}, tag="operate"
        )
    },
    "/dashboard": {"get": _op("The live dashboard page", {"200": _text("an HTML page", "text/html")}, tag="operate")},
    "/dashboard/data": {
        "get": _op(
            "The dashboard's time series, per-model table and recent decisions",
            {
                "200": _answer(
                    "per-interval aggregates, the per-model table, recent decisions, settings, shadow summary",
                    "DashboardData",
                )
            },
            tag="operate",
        )
    },
    "/openapi.json": {
        "get": _op(
            "This document",
            {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}},
            tag="operate",
        )
    },
    "/docs": {"get": _op("This document, readable", {"200": _text("an HTML page", "text/html")}, tag="operate")},
    "/admin/settings": {
        "get": _op("The run-time settings in force", {"200": _answer("settings", "Settings")}, tag="admin")
    },
    "/admin/weights": {
        "post": _op(
            "Change cost_weight / latency_weight; learning continues under them",
            {"200": _answer("the new settings", "Settings"), **_errors(400)},
            body="WeightsRequest",
            tag="admin",
        )
    },
    "/admin/exploration": {
        "post": _op(
            "Pause exploration (serve the argmax) or resume it",
            {"200": _answer("the new settings", "Settings"), **_errors(400)},
            body="ExplorationRequest",
            tag="admin",
        )
    },
    "/admin/shadow": {
        "post": _op(
            "Serve a baseline model and log the bandit's pick next to it (null: stop)",
            {"200": _answer("the new settings", "Settings"), **_errors(400)},
            body="ShadowRequest",
            tag="admin",
        ),
        "get": _op(
            "Match rate and off-policy value of the bandit in shadow mode",
            {"200": _answer("the shadow summary", "ShadowSummary")},
            tag="admin",
        ),
    },
    "/admin/reload": {
        "post": _op(
            "Re-read the configuration file: catalog and rules now, the policy kept",
            {"200": _answer("what changed, and the sections that need a restart", "Reloaded"), **_errors(400)},
            tag="admin",
        )
    },
    "/admin/snapshot": {
        "post": _op(
            "Checkpoint the policy into the log now",
            {"200": _answer("the checkpoint written", "Snapshot"), **_errors(503)},
            tag="admin",
        )
    },
    "/admin/policy": {
        "get": _op(
            "Download the live policy as a policy file", {"200": _answer("a policy file", "PolicyFile")}, tag="admin"
        ),
        "post": _op(
            "Serve a policy file (e.g. from `banditroute replay-log`) and learn on top of it",
            {"200": _answer("the policy loaded", "PolicyLoaded"), **_errors(400, 409, 413, 503)},
            body="PolicyFile",
            tag="admin",
        ),
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "banditroute",
            "version": "0.1.0",
            "description": "A learning LLM router: POST /route picks a model, POST /reward teaches it.",
        },
        "paths": {path: {method: _secured(path, op) for method, op in ops.items()} for path, ops in PATHS.items()},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key with scopes route, reward and/or admin "
                    "([auth].keys, BANDITROUTE_API_KEYS; the admin key also "
                    "from admin.key_sha256 or BANDITROUTE_ADMIN_KEY)",
                }
            },
        },
    }
