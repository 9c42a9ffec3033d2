"""The component schemas of the OpenAPI document (`openapi.py` holds the paths): one per JSON shape
the HTTP API reads or writes, with the small helpers that build them."""

from __future__ import annotations

from typing import Any

from banditroute.api.requests import (
    COST_MAX_USD,
    ERRORS,
    FEEDBACK_VALUES,
    LATENCY_MAX_MS,
    METADATA_MAX_KEY,
    METADATA_MAX_KEYS,
    METADATA_MAX_LIST,
    METADATA_MAX_STRING,
    NOT_BLANK,
    SOURCES,
    TOKENS_MAX,
    WEIGHT_MAX,
)
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


def any_given(keys: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """`anyOf` branches: at least one of `keys` present and not null."""
    return [{"required": [k], "properties": {k: {"not": {"type": "null"}}}} for k in keys]


META_STRING = {"type": "string", "maxLength": METADATA_MAX_STRING}
META_LIST = {"type": "array", "items": META_STRING, "maxItems": METADATA_MAX_LIST}
META_TEXT = {"type": ["string", "number", "null"], "maxLength": METADATA_MAX_STRING}
METADATA = {
    "type": ["object", "null"],
    "maxProperties": METADATA_MAX_KEYS,
    "propertyNames": {"maxLength": METADATA_MAX_KEY},
    "properties": {
        "capabilities": {**META_LIST, "type": ["array", "null"]},
        "sensitive": {"type": ["boolean", "null"]},
        "max_latency_ms": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "user_tier": META_TEXT,
        "tenant": META_TEXT,
        "conversation_id": META_TEXT,
    },
    "additionalProperties": {"anyOf": [{**META_STRING, "type": ["string", "number", "boolean", "null"]}, META_LIST]},
}


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
            "query": {"type": "string", "pattern": NOT_BLANK, "description": "the request text (not blank)"},
            "metadata": METADATA,
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
            "latency_ms": {"type": ["number", "null"], "minimum": 0, "maximum": LATENCY_MAX_MS},
            "ttft_ms": {"type": ["number", "null"], "minimum": 0, "maximum": LATENCY_MAX_MS},
            "cost_usd": {"type": ["number", "null"], "minimum": 0, "maximum": COST_MAX_USD},
            "input_tokens": {"type": ["integer", "null"], "minimum": 0, "maximum": TOKENS_MAX},
            "output_tokens": {"type": ["integer", "null"], "minimum": 0, "maximum": TOKENS_MAX},
            "source": {"enum": list(SOURCES)},
            "error": {"enum": [*ERRORS, None]},
            "reward_token": {
                "type": ["string", "null"],
                "pattern": "^[0-9a-f]{64}$",
                "description": "the one /route returned; required when auth is on",
            },
        },
        required=("event_id",),
        description="At least one of " + ", ".join(FEEDBACK_VALUES) + " (not null).",
    )
    | {"anyOf": any_given(FEEDBACK_VALUES)},
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
    "ProxyError": obj(
        {
            "error": obj(
                {
                    "message": STRING,
                    "type": STRING,
                    "param": {"type": "null"},
                    "code": STRING,
                    "rule": STRING,
                    "excluded": map_of(STRING),
                    "elapsed_ms": NUMBER,
                    "attempts": {
                        "type": "array",
                        "items": obj({"model": STRING, "error": STRING, "detail": STRING, "elapsed_ms": NUMBER}),
                    },
                },
                required=("message", "code"),
                description="the OpenAI error shape; `type` (`invalid_request_error`, `server_error`) and `param` on "
                "the proxy's own errors; `rule` and `excluded` on a 422, `elapsed_ms` and `attempts` on a 502 or 504 "
                "(an upstream's own 4xx is passed through as the upstream wrote it)",
            )
        }
    ),
    "Index": obj({"service": STRING, "version": STRING, "links": map_of(STRING)}),
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
            "target": {
                "type": ["object", "null"],
                "description": "the budget or quality target's controller: target, cost_weight, measured spend and"
                " quality over its window (docs/budget.md); null without a target",
            },
            "recent_events": INTEGER,
            "auth": {"enum": ["on", "off"]},
            "role": {
                "type": "string",
                "enum": ["single", "serving", "host"],
                "description": "serving: one of the processes of `serve --workers N` (counts are its own);"
                " host: a host of a fleet over PostgreSQL (`serve --store postgresql://…`)",
            },
            "pid": INTEGER,
            "policy_learned_seq": {**INTEGER, "description": "the last learned join the policy includes"},
            "host": {**STRING, "description": "which host answered: `cluster.host_name`, else the machine's name:port"},
            "learner": {**BOOLEAN, "description": "whether this process is the one that learns and publishes"},
        }
    ),
    "Settings": obj(
        {
            "cost_weight": NUMBER,
            "latency_weight": NUMBER,
            "exploration_paused": BOOLEAN,
            "shadow_baseline": {"type": ["string", "null"]},
            "target_cost_per_1k": {"type": ["number", "null"]},
            "target_quality": {"type": ["number", "null"]},
            "target": {"type": ["object", "null"], "description": "the target controller's state (docs/budget.md)"},
        }
    ),
    "WeightsRequest": obj(
        {
            "cost_weight": {**WEIGHT, "type": ["number", "null"]},
            "latency_weight": {**WEIGHT, "type": ["number", "null"]},
            "target_cost_per_1k": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": WEIGHT_MAX,
                "description": "a budget, USD per 1,000 requests: cost_weight is then set online; null: stop",
            },
            "target_quality": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "exclusiveMaximum": 1,
                "description": "a mean quality to hold at the least spend; null: stop",
            },
        },
        required=(),
        description="At least one field; the others keep their values. At most one target is set (null: stop).",
    )
    | {
        "anyOf": any_given(["cost_weight", "latency_weight"])
        + [{"required": ["target_cost_per_1k"]}, {"required": ["target_quality"]}]
    },
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
    "ModelRow": obj(
        {
            "model": STRING,
            "decisions": INTEGER,
            "share": NUMBER,
            "mean_quality": NULLABLE_NUMBER,
            "cost_per_1k": NULLABLE_NUMBER,
            "rewards": INTEGER,
            "state": {"enum": ["active", "cold_start", "cooldown"]},
            "cooldown_remaining_s": NULLABLE_NUMBER,
        },
        description="one catalog model: share of decisions, observed mean quality, USD per 1,000 requests,"
        " rewards learned, the rules' state (see telemetry/per_model.py)",
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
            "per_model": {"type": "array", "items": ref("ModelRow")},
        }
    ),
}
