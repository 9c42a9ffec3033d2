"""The OpenAPI 3.1 document of the HTTP API, built in code next to what it describes.

`tests/api/test_openapi.py` checks that every route the app serves is described here (and
nothing else), and validates real responses of a running server against these schemas, so the
document cannot drift from the code unnoticed. Served at `GET /openapi.json`; `GET /docs` renders it.
"""

from __future__ import annotations

from typing import Any

from banditroute.api.requests import ERRORS, SOURCES, WEIGHT_MAX
from banditroute.auth import ADMIN_PREFIX, required_scope
from banditroute.snapshot import FORMAT, VERSION

JSON = "application/json"
NUMBER = {"type": "number"}
NULLABLE_NUMBER = {"type": ["number", "null"]}
STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
WEIGHT = {"type": "number", "minimum": 0, "maximum": WEIGHT_MAX}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: dict[str, Any],
    required: tuple[str, ...] | None = None,
    *,
    closed: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    """An object schema; `required` defaults to every property; `closed` forbids other keys."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def map_of(values: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": values}


ESTIMATE = obj(
    {
        "method": STRING,
        "value": NUMBER,
        "ci_low": NULLABLE_NUMBER,
        "ci_high": NULLABLE_NUMBER,
        "n": INTEGER,
        "stderr": NULLABLE_NUMBER,
    },
    description="null interval: a single round",
)

SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {"error": obj({"code": STRING, "message": STRING})},
        description="Every refusal: a 4xx (or 503) with a machine code and a human message.",
    ),
    "RouteRequest": obj(
        {
            "query": {"type": "string", "minLength": 1, "description": "the request text"},
            "metadata": {
                "type": ["object", "null"],
                "maxProperties": 32,
                "additionalProperties": {
                    "anyOf": [
                        {"type": ["string", "number", "boolean", "null"]},
                        {"type": "array", "items": STRING, "maxItems": 32},
                    ]
                },
            },
            "max_output_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 10_000_000},
            "escalate_from": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": 200,
                "description": "a cascade step: only models with a higher output_price than this one",
            },
        },
        required=("query",),
    ),
    "RouteResponse": obj(
        {
            "event_id": STRING,
            "model": STRING,
            "probability": NUMBER,
            "pmf": map_of(NUMBER),
            "explored": BOOLEAN,
            "fallbacks": {"type": "array", "items": STRING},
            "excluded": {**map_of(STRING), "description": "model -> the rule that excluded it"},
            "reason": STRING,
            "reward_token": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "HMAC of the event id and tenant: /reward asks for it when auth is on",
            },
        }
    ),
    "RewardRequest": obj(
        {
            "event_id": {"type": "string", "pattern": "^[0-9A-Za-z_\\-]{1,128}$"},
            "quality": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "latency_ms": {"type": ["number", "null"], "minimum": 0},
            "ttft_ms": {"type": ["number", "null"], "minimum": 0},
            "cost_usd": {"type": ["number", "null"], "minimum": 0},
            "input_tokens": {"type": ["integer", "null"], "minimum": 0},
            "output_tokens": {"type": ["integer", "null"], "minimum": 0},
            "source": {"enum": list(SOURCES)},
            "error": {"enum": [*ERRORS, None]},
            "reward_token": {
                "type": ["string", "null"],
                "pattern": "^[0-9a-f]{64}$",
                "description": "the one /route returned; required when auth is on",
            },
        },
        required=("event_id",),
    ),
    "RewardResponse": obj(
        {
            "event_id": STRING,
            "status": {"enum": ["pending", "learned", "late"]},
            "stored": BOOLEAN,
            "quality_rule": {"enum": ["first", "last"]},
            "quality_applied": BOOLEAN,
            "reward": NUMBER,
        },
        required=("event_id", "status", "stored"),
    ),
    "Health": obj({"status": {"enum": ["ok", "degraded"]}}),
    "Model": obj(
        {
            "name": STRING,
            "input_price": NUMBER,
            "output_price": NUMBER,
            "context_window": INTEGER,
            "capabilities": {"type": "array", "items": STRING},
            "allow_sensitive_data": BOOLEAN,
            "latency_ttft_ms": NUMBER,
            "tokens_per_s": NUMBER,
            "base_url": {"type": ["string", "null"]},
            "upstream_model": {"type": ["string", "null"]},
        }
    ),
    "Models": obj({"models": {"type": "array", "items": ref("Model")}}),
    "Stats": obj(
        {
            "decisions": INTEGER,
            "feedback_parts": INTEGER,
            "rewards_learned": INTEGER,
            "defaults_applied": INTEGER,
            "skipped": INTEGER,
            "expired": INTEGER,
            "late_parts": INTEGER,
            "pending_joins": INTEGER,
            "selection_share": map_of(NUMBER),
            "write_queue": INTEGER,
            "store_healthy": BOOLEAN,
            "cost_weight": NUMBER,
            "latency_weight": NUMBER,
            "exploration_paused": BOOLEAN,
            "shadow_baseline": {"type": ["string", "null"]},
            "uptime_s": NUMBER,
            "rewards_per_model": map_of(INTEGER),
            "cold_start": {"type": "array", "items": STRING},
            "cooldowns": {**map_of(NUMBER), "description": "model -> seconds of cooldown left"},
            "cooldowns_started": INTEGER,
            "latency": map_of(obj({"p95_ms": NUMBER, "samples": INTEGER})),
            "budgets": map_of(obj({"spent_usd": NUMBER, "budget_usd": NUMBER})),
            "sticky_conversations": INTEGER,
            "catalog_reloads": INTEGER,
            "recent_events": INTEGER,
            "auth": {"enum": ["on", "off"]},
            "role": {
                "type": "string",
                "enum": ["single", "serving"],
                "description": "serving: one of the processes of `serve --workers N` (counts are its own)",
            },
            "pid": INTEGER,
            "policy_learned_seq": {**INTEGER, "description": "the last learned join the policy includes"},
        }
    ),
    "Settings": obj(
        {
            "cost_weight": NUMBER,
            "latency_weight": NUMBER,
            "exploration_paused": BOOLEAN,
            "shadow_baseline": {"type": ["string", "null"]},
        }
    ),
    "WeightsRequest": obj(
        {
            "cost_weight": {**WEIGHT, "type": ["number", "null"]},
            "latency_weight": {**WEIGHT, "type": ["number", "null"]},
        },
        required=(),
        description="At least one of the two; the other keeps its value.",
    ),
    "ExplorationRequest": obj({"paused": BOOLEAN}),
    "ShadowRequest": obj(
        {
            "baseline": {
                "type": ["string", "null"],
                "description": "a catalog model to serve, or null to stop shadow mode",
            }
        }
    ),
    "ShadowSummary": obj(
        {
            "baseline": {"type": ["string", "null"]},
            "decisions": INTEGER,
            "matched": INTEGER,
            "match_rate": NULLABLE_NUMBER,
            "learned": INTEGER,
            "baseline_value": NULLABLE_NUMBER,
            "bandit_ips": {"anyOf": [ESTIMATE, {"type": "null"}]},
            "bandit_snips": {"anyOf": [ESTIMATE, {"type": "null"}]},
        }
    ),
    "Snapshot": obj({"learned_seq": INTEGER, "sha256": STRING, "bytes": INTEGER, "ts": NUMBER}),
    "PolicyFile": obj(
        {
            "format": {"const": FORMAT},
            "version": {"const": VERSION},
            "vw_args": {"type": "array", "items": STRING},
            "sha256": STRING,
            "model": {"type": "string", "contentEncoding": "base64"},
            "learned_seq": INTEGER,
            "cost_weight": NUMBER,
            "latency_weight": NUMBER,
            "created": NUMBER,
            "source": STRING,
        },
        required=("format", "version", "vw_args", "sha256", "model"),
    ),
    "PolicyLoaded": obj(
        {
            "sha256": STRING,
            "bytes": INTEGER,
            "vw_args": {"type": "array", "items": STRING},
            "learned_seq": INTEGER,
            "cost_weight": NUMBER,
            "latency_weight": NUMBER,
            "created": NUMBER,
            "source": STRING,
        }
    ),
    "Bucket": obj(
        {
            "t": NUMBER,
            "decisions": INTEGER,
            "share": map_of(NUMBER),
            "exploration_rate": NULLABLE_NUMBER,
            "learned": INTEGER,
            "mean_reward": NULLABLE_NUMBER,
            "mean_quality": NULLABLE_NUMBER,
            "cost_per_1k": NULLABLE_NUMBER,
        }
    ),
    "RecentDecision": obj(
        {
            "ts": NUMBER,
            "event_id": STRING,
            "model": STRING,
            "probability": NUMBER,
            "explored": BOOLEAN,
            "reason": STRING,
            "bandit_pick": {"type": ["string", "null"]},
            "excluded": INTEGER,
        }
    ),
    "ConfigChange": obj(
        {
            "ts": NUMBER,
            "kind": {"enum": ["weights", "exploration", "shadow", "policy_loaded", "reload"]},
            "payload": {"type": "object"},
        }
    ),
    "ChatCompletionRequest": obj(
        {
            "model": {"type": "string", "description": '"auto", a proxy profile, or a catalog model (passed through)'},
            "messages": {"type": "array", "minItems": 1, "items": {"type": "object"}},
            "stream": BOOLEAN,
            "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 10_000_000},
            "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 10_000_000},
        },
        required=("model", "messages"),
        closed=False,
        description="An OpenAI chat completion request; other fields are passed to the upstream as they are.",
    ),
    "ModelList": obj(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": obj({"id": STRING, "object": {"const": "model"}, "created": INTEGER, "owned_by": STRING}),
            },
        }
    ),
    "Reloaded": obj(
        {
            "status": {"const": "reloaded"},
            "added": {"type": "array", "items": STRING},
            "removed": {"type": "array", "items": STRING},
            "changed": {"type": "array", "items": STRING},
            "models": {"type": "array", "items": STRING},
            "needs_restart": {"type": "array", "items": STRING},
        }
    ),
    "DashboardData": obj(
        {
            "interval_s": NUMBER,
            "series": {"type": "array", "items": ref("Bucket")},
            "recent": {"type": "array", "items": ref("RecentDecision")},
            "now": NUMBER,
            "poll_interval_s": NUMBER,
            "models": {"type": "array", "items": STRING},
            "settings": ref("Settings"),
            "totals": {"type": "object"},
            "shadow": ref("ShadowSummary"),
            "changes": {"type": "array", "items": ref("ConfigChange")},
        }
    ),
}


def _json(schema: str) -> dict[str, Any]:
    return {"content": {JSON: {"schema": ref(schema)}}}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, **_json(schema)}


def _errors(*statuses: int) -> dict[str, Any]:
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
    return {str(s): _answer(what[s], "Error") for s in statuses}


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
                **_errors(400, 404, 413, 422, 502, 504),
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
            "The dashboard's time series and recent decisions",
            {"200": _answer("per-interval aggregates, recent decisions, settings, shadow summary", "DashboardData")},
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
