"""The OpenAPI document as tight as the validation (issue 15, defect 7): every request body the
validation refuses, the document's schema refuses too, so a client generated from the document
cannot send a schema-valid request that gets a 400 (the exceptions a schema cannot state, such as a
model name that must be in the catalog, are listed in docs/reliability.md)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from banditroute.api.requests import ApiError, parse_reward, parse_route, parse_weights
from banditroute.api.schemas import SCHEMAS


def route(body: dict[str, Any]) -> None:
    parse_route(body, 4_000_000)


def reward(body: dict[str, Any]) -> None:
    parse_reward(body, 0.0)


def weights(body: dict[str, Any]) -> None:
    parse_weights(body, (0.1, 0.0))


EID = "a" * 32
REFUSED = [
    ("RouteRequest", route, {"query": "   \n\t "}, "invalid_query"),
    ("RouteRequest", route, {"query": "x", "metadata": {"k" * 65: 1}}, "invalid_metadata"),
    ("RouteRequest", route, {"query": "x", "metadata": {"note": "n" * 513}}, "invalid_metadata"),
    ("RouteRequest", route, {"query": "x", "metadata": {"tags": ["t" * 513]}}, "invalid_metadata"),
    ("RouteRequest", route, {"query": "x", "metadata": {"capabilities": "code"}}, "invalid_metadata"),
    ("RouteRequest", route, {"query": "x", "metadata": {"sensitive": 1}}, "invalid_metadata"),
    ("RouteRequest", route, {"query": "x", "metadata": {"max_latency_ms": 0}}, "invalid_metadata"),
    ("RouteRequest", route, {"query": "x", "metadata": {"max_latency_ms": True}}, "invalid_metadata"),
    ("RouteRequest", route, {"query": "x", "metadata": {"tenant": ["a"]}}, "invalid_metadata"),
    ("RouteRequest", route, {"query": "x", "metadata": {"user_tier": False}}, "invalid_metadata"),
    ("RewardRequest", reward, {"event_id": EID}, "empty_feedback"),
    ("RewardRequest", reward, {"event_id": EID, "quality": None, "source": "user"}, "empty_feedback"),
    ("RewardRequest", reward, {"event_id": EID, "latency_ms": 86_400_001}, "invalid_latency_ms"),
    ("RewardRequest", reward, {"event_id": EID, "ttft_ms": 1e9}, "invalid_ttft_ms"),
    ("RewardRequest", reward, {"event_id": EID, "cost_usd": 1_000_001}, "invalid_cost_usd"),
    ("RewardRequest", reward, {"event_id": EID, "input_tokens": 100_000_001}, "invalid_input_tokens"),
    ("RewardRequest", reward, {"event_id": EID, "output_tokens": 100_000_001}, "invalid_output_tokens"),
    ("RewardRequest", reward, {"event_id": EID, "output_tokens": 1.5}, "invalid_output_tokens"),
    ("WeightsRequest", weights, {}, "empty_weights"),
    ("WeightsRequest", weights, {"cost_weight": None, "latency_weight": None}, "empty_weights"),
]
ACCEPTED = [
    ("RouteRequest", route, {"query": " a ", "metadata": {"capabilities": ["code"], "tenant": "t", "sensitive": None}}),
    ("RouteRequest", route, {"query": "x", "metadata": {"max_latency_ms": 0.5, "user_tier": 3, "k" * 64: "n" * 512}}),
    ("RewardRequest", reward, {"event_id": EID, "error": "timeout", "quality": None}),
    ("RewardRequest", reward, {"event_id": EID, "output_tokens": 0}),
    ("RewardRequest", reward, {"event_id": EID, "input_tokens": 12.0}),  # JSON Schema: an integer
    ("RouteRequest", route, {"query": "x", "max_output_tokens": 256.0}),
    ("WeightsRequest", weights, {"latency_weight": 0.0, "cost_weight": None}),
]


@pytest.mark.parametrize(("schema", "parse", "body", "code"), REFUSED)
def test_what_validation_refuses_the_schema_refuses(schema: str, parse: Any, body: dict, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse(body)
    assert refused.value.code == code
    assert not jsonschema.Draft202012Validator(SCHEMAS[schema]).is_valid(body)


@pytest.mark.parametrize(("schema", "parse", "body"), ACCEPTED)
def test_what_validation_accepts_the_schema_accepts(schema: str, parse: Any, body: dict) -> None:
    parse(body)
    jsonschema.Draft202012Validator(SCHEMAS[schema]).validate(body)
