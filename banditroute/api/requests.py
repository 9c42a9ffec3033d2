"""Request validation for the HTTP API: JSON objects in, typed requests out, or an ApiError. Pure.

Every rule here turns bad input into a 4xx with `{"error": {"code", "message"}}` before anything is
stored or learned.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from banditroute.types import FeedbackPart

SOURCES = ("user", "judge", "system")
ERRORS = ("timeout", "rate_limited", "server_error", "connection_error", "content_filter", "other")
_EVENT_ID = re.compile(r"[0-9A-Za-z_\-]{1,128}")
# A character that is not blank, in a form Python and JSON Schema (ECMA-262) read alike: each
# dialect's whitespace plus the other's (Python's \s adds \x1c-\x1f and \x85, ECMA's adds \ufeff).
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"
_NOT_BLANK = re.compile(NOT_BLANK)
METADATA_MAX_KEYS = 32
METADATA_MAX_KEY = 64
METADATA_MAX_STRING = 512
METADATA_MAX_LIST = 32
_REWARD_TOKEN = re.compile(r"[0-9a-f]{64}")
ROUTE_FIELDS = frozenset({"query", "metadata", "max_output_tokens", "escalate_from"})
_MODEL_NAME_MAX = 200
REWARD_FIELDS = frozenset(
    {
        "event_id",
        "quality",
        "latency_ms",
        "ttft_ms",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "source",
        "error",
        "reward_token",
    }
)
WEIGHT_MAX = 1_000_000.0  # cost_weight / latency_weight accepted at run time
FEEDBACK_VALUES = ("quality", "latency_ms", "ttft_ms", "cost_usd", "input_tokens", "output_tokens", "error")
LATENCY_MAX_MS = 86_400_000.0
COST_MAX_USD = 1_000_000.0
TOKENS_MAX = 100_000_000


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> bytes:
        return orjson.dumps({"error": {"code": self.code, "message": self.message}})


@dataclass(frozen=True, slots=True)
class RouteRequest:
    query: str
    metadata: dict[str, Any]
    max_output_tokens: int | None
    escalate_from: str | None = None


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return obj


def _reject_unknown(obj: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field(s) {unknown[:5]}; known: {sorted(known)}")


def parse_route(obj: dict[str, Any], max_query_chars: int) -> RouteRequest:
    _reject_unknown(obj, ROUTE_FIELDS)
    query = obj.get("query")
    if not isinstance(query, str):
        raise ApiError(400, "invalid_query", "query must be a string")
    if _NOT_BLANK.search(query) is None:
        raise ApiError(400, "invalid_query", "query must not be empty")
    if len(query) > max_query_chars:
        raise ApiError(413, "query_too_long", f"query has {len(query)} characters; the limit is {max_query_chars}")
    metadata = obj.get("metadata", {})
    if metadata is None:
        metadata = {}
    check_metadata(metadata)
    max_out = _integer(obj.get("max_output_tokens"))
    if max_out is not None and (not _is_int(max_out) or not 1 <= max_out <= 10_000_000):
        raise ApiError(400, "invalid_max_output_tokens", "max_output_tokens must be an integer in 1..10000000")
    escalate_from = obj.get("escalate_from")
    if escalate_from is not None and (
        not isinstance(escalate_from, str) or not 0 < len(escalate_from) <= _MODEL_NAME_MAX
    ):
        raise ApiError(400, "invalid_escalate_from", "escalate_from must be the name of a catalog model")
    return RouteRequest(query, metadata, max_out, escalate_from)


def check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict):
        raise ApiError(400, "invalid_metadata", "metadata must be an object")
    if len(metadata) > METADATA_MAX_KEYS:
        raise ApiError(400, "invalid_metadata", f"metadata has more than {METADATA_MAX_KEYS} keys")
    for key, value in metadata.items():
        if len(key) > METADATA_MAX_KEY:
            raise ApiError(400, "invalid_metadata", f"metadata keys must be at most {METADATA_MAX_KEY} characters")
        if isinstance(value, list):
            if len(value) > METADATA_MAX_LIST or not all(
                isinstance(v, str) and len(v) <= METADATA_MAX_STRING for v in value
            ):
                raise ApiError(
                    400,
                    "invalid_metadata",
                    f"metadata.{key}: a list must hold at most {METADATA_MAX_LIST} short strings",
                )
        elif isinstance(value, str):
            if len(value) > METADATA_MAX_STRING:
                raise ApiError(400, "invalid_metadata", f"metadata.{key} is longer than {METADATA_MAX_STRING}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, "invalid_metadata", f"metadata.{key} must be finite")
        elif value is not None and not isinstance(value, bool | int | float):
            raise ApiError(
                400, "invalid_metadata", f"metadata.{key} must be a string, number, boolean, null or list of strings"
            )
    caps = metadata.get("capabilities")
    if caps is not None and not isinstance(caps, list):
        raise ApiError(400, "invalid_metadata", "metadata.capabilities must be a list of strings")
    sensitive = metadata.get("sensitive")
    if sensitive is not None and not isinstance(sensitive, bool):
        raise ApiError(400, "invalid_metadata", "metadata.sensitive must be true or false")
    latency = metadata.get("max_latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, int | float) or latency <= 0):
        raise ApiError(400, "invalid_metadata", "metadata.max_latency_ms must be a number > 0")
    for key in ("user_tier", "tenant", "conversation_id"):
        if isinstance(metadata.get(key), list | bool):
            raise ApiError(400, "invalid_metadata", f"metadata.{key} must be a string")


def parse_reward(obj: dict[str, Any], now: float) -> FeedbackPart:
    _reject_unknown(obj, REWARD_FIELDS)
    event_id = obj.get("event_id")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise ApiError(400, "invalid_event_id", "event_id must be the string /route returned")
    if not any(obj.get(k) is not None for k in FEEDBACK_VALUES):
        raise ApiError(400, "empty_feedback", f"send at least one of {list(FEEDBACK_VALUES)}")
    quality = _number(obj, "quality", 0.0, 1.0)
    latency = _number(obj, "latency_ms", 0.0, LATENCY_MAX_MS)
    ttft = _number(obj, "ttft_ms", 0.0, LATENCY_MAX_MS)
    cost = _number(obj, "cost_usd", 0.0, COST_MAX_USD)
    tokens_in = _count(obj, "input_tokens")
    tokens_out = _count(obj, "output_tokens")
    source = obj.get("source", "user")
    if source not in SOURCES:
        raise ApiError(400, "invalid_source", f"source must be one of {list(SOURCES)}")
    error = obj.get("error")
    if error is not None and error not in ERRORS:
        raise ApiError(400, "invalid_error", f"error must be one of {list(ERRORS)}")
    return FeedbackPart(event_id, now, quality, latency, cost, tokens_in, tokens_out, source, error, ttft)


def parse_reward_token(obj: dict[str, Any]) -> str | None:
    token = obj.get("reward_token")
    if token is None:
        return None
    if not isinstance(token, str) or not _REWARD_TOKEN.fullmatch(token):
        raise ApiError(400, "invalid_reward_token", "reward_token must be the string /route returned")
    return token


def _number(obj: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"invalid_{key}", f"{key} must be a finite number")
    if not low <= value <= high:
        raise ApiError(400, f"invalid_{key}", f"{key} must be in {low:g}..{high:g}")
    return float(value)


def _count(obj: dict[str, Any], key: str) -> int | None:
    value = _integer(obj.get(key))
    if value is None:
        return None
    if not _is_int(value) or not 0 <= value <= TOKENS_MAX:
        raise ApiError(400, f"invalid_{key}", f"{key} must be an integer in 0..{TOKENS_MAX}")
    return value


def _integer(value: Any) -> Any:
    """An integral float (`3.0`) as the int it is: JSON Schema counts it an integer, so the API does too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- admin bodies ----------------------------------------------------------------------------


def parse_weights(obj: dict[str, Any], current: tuple[float, float]) -> tuple[float, float]:
    """`{"cost_weight"?, "latency_weight"?}` -> the new (cost_weight, latency_weight); at least one."""
    _reject_unknown(obj, frozenset({"cost_weight", "latency_weight"}))
    if obj.get("cost_weight") is None and obj.get("latency_weight") is None:
        raise ApiError(400, "empty_weights", "send cost_weight and/or latency_weight")
    cost = _number(obj, "cost_weight", 0.0, WEIGHT_MAX)
    latency = _number(obj, "latency_weight", 0.0, WEIGHT_MAX)
    return (cost if cost is not None else current[0], latency if latency is not None else current[1])


def parse_exploration(obj: dict[str, Any]) -> bool:
    _reject_unknown(obj, frozenset({"paused"}))
    paused = obj.get("paused")
    if not isinstance(paused, bool):
        raise ApiError(400, "invalid_paused", "paused must be true or false")
    return paused


def parse_shadow(obj: dict[str, Any], models: tuple[str, ...]) -> str | None:
    _reject_unknown(obj, frozenset({"baseline"}))
    if "baseline" not in obj:
        raise ApiError(400, "invalid_baseline", "send baseline: a model name, or null to stop shadow mode")
    baseline = obj["baseline"]
    if baseline is not None and (not isinstance(baseline, str) or baseline not in models):
        raise ApiError(400, "invalid_baseline", "baseline must be a model of the catalog (GET /models) or null")
    return baseline
