"""The client's pure half: the decision and reward records, typed errors, the retry rules, request bodies.

`banditroute.client` holds the two clients and re-exports everything here that a caller uses.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

API_KEY_ENV = "BANDITROUTE_API_KEY"
RETRIED_STATUS = frozenset({429, 503})


# -- errors -----------------------------------------------------------------------------------


class BanditrouteError(Exception):
    """A refusal or failure; `status` is the HTTP status (0: no answer), `code` the server's machine code."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None = None):
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class BadRequest(BanditrouteError):
    """The server refused the request as sent (a 4xx other than 401/403/404/429): fix it, do not retry."""


class Unauthorized(BanditrouteError):
    """401/403: the API key is missing, wrong or lacks the scope, or the reward token does not match."""


class UnknownEvent(BanditrouteError):
    """404 on /reward: no decision has this event id (a typo, or a decision from another server)."""


class RateLimited(BanditrouteError):
    """429 after the last retry: this API key sends more than its rate."""


class Overloaded(BanditrouteError):
    """503 after the last retry: the server is shedding load or cannot write its log."""


class ConnectionFailed(BanditrouteError):
    """No answer after the last retry: the server is down, unreachable or too slow."""


def error_from(status: int, body: bytes, retry_after_s: float | None = None) -> BanditrouteError:
    """The typed error for a non-2xx answer, with the server's `{"error": {"code", "message"}}` when it sent one."""
    code, message = f"http_{status}", body[:200].decode(errors="replace")
    try:
        detail = orjson.loads(body)["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    if status in (401, 403):
        cls: type[BanditrouteError] = Unauthorized
    elif status == 404 and code == "unknown_event":
        cls = UnknownEvent
    elif status == 429:
        cls = RateLimited
    elif status == 503:
        cls = Overloaded
    elif 400 <= status < 500:
        cls = BadRequest
    else:
        cls = BanditrouteError
    return cls(status, code, message, retry_after_s)


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What `/route` answered: the model to call and what `/reward` needs later (event id, reward token)."""

    event_id: str
    model: str
    reward_token: str
    probability: float
    reason: str
    fallbacks: tuple[str, ...] = ()  # the next best allowed models, to try in order if `model` fails
    explored: bool = False
    pmf: Mapping[str, float] = field(default_factory=dict)
    excluded: Mapping[str, str] = field(default_factory=dict)  # model -> the rule that excluded it

    @classmethod
    def from_response(cls, obj: Mapping[str, Any]) -> RouteDecision:
        try:
            decision = cls(
                event_id=obj["event_id"],
                model=obj["model"],
                reward_token=obj["reward_token"],
                probability=float(obj["probability"]),
                reason=obj["reason"],
                fallbacks=tuple(obj.get("fallbacks", ())),
                explored=bool(obj.get("explored", False)),
                pmf={str(k): float(v) for k, v in obj.get("pmf", {}).items()},
                excluded={str(k): str(v) for k, v in obj.get("excluded", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a banditroute decision: {exc!r}") from None
        named: tuple[object, ...] = (decision.event_id, decision.model, decision.reward_token)  # untrusted JSON
        if not all(isinstance(v, str) and v for v in named):
            raise ValueError("not a banditroute decision: event_id, model and reward_token must be strings")
        return decision

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> RouteDecision:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not a banditroute decision: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError("not a banditroute decision: expected a JSON object")
        return cls.from_response(obj)


@dataclass(frozen=True, slots=True)
class RewardResult:
    """What `/reward` answered: `learned` (the join completed), `pending` (waiting for more) or `late`."""

    event_id: str
    status: str
    reward: float | None = None  # the reward learned, when this part completed the join
    quality_applied: bool | None = None  # whether this quality counted (None: no quality sent)


@dataclass(frozen=True, slots=True)
class Retry:
    """How hard to try: `attempts` in all, waits doubling from `backoff_s` up to `max_backoff_s`
    (at least what `Retry-After` asks), and no wait that would end past `total_s` from the first try."""

    attempts: int = 4
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    total_s: float = 30.0

    def wait_s(self, attempt: int, retry_after_s: float | None, elapsed_s: float, rng: random.Random) -> float | None:
        """Seconds to wait before try `attempt + 1` (0-based `attempt` just failed), or None: give up."""
        if attempt + 1 >= self.attempts:
            return None
        # Jitter (half to full backoff) keeps clients that failed together from retrying together.
        wait = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + rng.random() / 2)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return wait if elapsed_s + wait <= self.total_s else None


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now` (the Unix time): delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


# -- request bodies, shared by both clients ----------------------------------------------------


def route_body(
    query: str, metadata: Mapping[str, Any], max_output_tokens: int | None, escalate_from: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query}
    if metadata:
        body["metadata"] = dict(metadata)
    if max_output_tokens is not None:
        body["max_output_tokens"] = max_output_tokens
    if escalate_from is not None:
        body["escalate_from"] = escalate_from
    return body


def reward_body(decision: RouteDecision | str, reward_token: str | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` are the feedback fields; None means not sent (the server needs at least one)."""
    if isinstance(decision, RouteDecision):
        body: dict[str, Any] = {"event_id": decision.event_id, "reward_token": reward_token or decision.reward_token}
    else:
        body = {"event_id": decision}
        if reward_token is not None:
            body["reward_token"] = reward_token
    body.update((k, v) for k, v in values.items() if v is not None)
    return body


def feedback_values(
    quality: float | None,
    latency_ms: float | None,
    ttft_ms: float | None,
    cost_usd: float | None,
    input_tokens: int | None,
    output_tokens: int | None,
    error: str | None,
    source: str | None,
) -> dict[str, Any]:
    return {
        "quality": quality,
        "latency_ms": latency_ms,
        "ttft_ms": ttft_ms,
        "cost_usd": cost_usd,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "error": error,
        "source": source,
    }


def reward_result(obj: Mapping[str, Any]) -> RewardResult:
    return RewardResult(obj["event_id"], obj["status"], obj.get("reward"), obj.get("quality_applied"))
