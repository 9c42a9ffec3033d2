"""A Python client for banditroute's `/route` and `/reward`: `Client` (standard library) and `AsyncClient` (aiohttp).

    client = Client("http://127.0.0.1:8080")
    decision = client.route("Summarise this contract", user_tier="pro")
    ...call decision.model...
    client.reward(decision, quality=0.9, latency_ms=840)

A `RouteDecision` carries its event id and reward token, and `to_json()` / `RouteDecision.from_json()`
move it to wherever the feedback happens (a queue, another process, a later request).

Retries: a 503 (the server is overloaded or its log cannot be written), a 429 (rate limited) and a
connection error are retried with exponential backoff, waiting at least what `Retry-After` asks,
within `Retry.attempts` and `Retry.total_s`. Other refusals raise at once, typed, with the server's
`code` and `message`. A `/route` retried after a lost answer leaves one unanswered decision behind;
it expires after `reward.reward_wait_s` with the default quality, like any decision without feedback.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from banditroute.client_wire import (
    API_KEY_ENV,
    RETRIED_STATUS,
    BadRequest,
    BanditrouteError,
    ConnectionFailed,
    Overloaded,
    RateLimited,
    Retry,
    RewardResult,
    RouteDecision,
    Unauthorized,
    UnknownEvent,
    error_from,
    feedback_values,
    retry_after_seconds,
    reward_body,
    reward_result,
    route_body,
)

__all__ = [
    "API_KEY_ENV",
    "AsyncClient",
    "BadRequest",
    "BanditrouteError",
    "Client",
    "ConnectionFailed",
    "Overloaded",
    "RateLimited",
    "RewardResult",
    "Retry",
    "RouteDecision",
    "Unauthorized",
    "UnknownEvent",
]

DEFAULT_URL = "http://127.0.0.1:8080"


class _Base:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        retry: Retry | None,
        rng: random.Random | None,
        environ: Mapping[str, str],
    ):
        self.base_url = base_url.rstrip("/")
        key = api_key if api_key is not None else environ.get(API_KEY_ENV)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.timeout_s = timeout_s
        self.retry = retry or Retry()
        self.rng = rng or random.Random()

    def _outcome(self, status: int, body: bytes, retry_after: str | None) -> tuple[Any, BanditrouteError | None]:
        """The decoded answer, or the error (retried when its status is 429 or 503)."""
        if 200 <= status < 300:
            try:
                return orjson.loads(body), None
            except orjson.JSONDecodeError:
                return None, BanditrouteError(status, "invalid_response", "the answer is not JSON")
        return None, error_from(status, body, retry_after_seconds(retry_after, time.time()))

    def _next_wait(self, attempt: int, error: BanditrouteError, started: float) -> float | None:
        if not isinstance(error, ConnectionFailed) and error.status not in RETRIED_STATUS:
            return None
        return self.retry.wait_s(attempt, error.retry_after_s, time.monotonic() - started, self.rng)


# -- the clients --------------------------------------------------------------------------------


class Client(_Base):
    """Blocking client on the standard library (`urllib`); safe to share between threads."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        retry: Retry | None = None,
        rng: random.Random | None = None,
        environ: Mapping[str, str] = os.environ,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(base_url, api_key, timeout_s, retry, rng, environ)
        self._sleep = sleep

    def route(
        self, query: str, *, max_output_tokens: int | None = None, escalate_from: str | None = None, **metadata: Any
    ) -> RouteDecision:
        """Ask which model should answer `query`; keyword arguments are the request's metadata."""
        body = route_body(query, metadata, max_output_tokens, escalate_from)
        return RouteDecision.from_response(self._call("POST", "/route", body))

    def reward(
        self,
        decision: RouteDecision | str,
        *,
        quality: float | None = None,
        latency_ms: float | None = None,
        ttft_ms: float | None = None,
        cost_usd: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        error: str | None = None,
        source: str | None = None,
        reward_token: str | None = None,
    ) -> RewardResult:
        """Send one feedback part for a decision (or its event id, with `reward_token` when auth is on)."""
        values = feedback_values(quality, latency_ms, ttft_ms, cost_usd, input_tokens, output_tokens, error, source)
        return reward_result(self._call("POST", "/reward", reward_body(decision, reward_token, values)))

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats", None)

    def _call(self, method: str, path: str, body: Any) -> Any:
        data = orjson.dumps(body) if body is not None else None
        started = time.monotonic()
        attempt = 0
        while True:
            request = urllib.request.Request(self.base_url + path, data=data, headers=self.headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    answer, error = self._outcome(resp.status, resp.read(), None)
            except urllib.error.HTTPError as exc:
                with exc:
                    answer, error = self._outcome(exc.code, exc.read(), exc.headers.get("Retry-After"))
            except OSError as exc:  # refused, reset, timed out (URLError is an OSError)
                answer, error = None, ConnectionFailed(0, "connection_error", str(getattr(exc, "reason", exc)))
            if error is None:
                return answer
            wait = self._next_wait(attempt, error, started)
            if wait is None:
                raise error
            self._sleep(wait)
            attempt += 1

    def close(self) -> None:
        """Nothing to release (one connection per request); here so both clients read alike."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """Asynchronous client on aiohttp. Use it in one event loop; `aclose()` (or `async with`) ends its session."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        retry: Retry | None = None,
        rng: random.Random | None = None,
        environ: Mapping[str, str] = os.environ,
    ):
        super().__init__(base_url, api_key, timeout_s, retry, rng, environ)
        self._session: Any = None  # an aiohttp.ClientSession, opened in the loop of the first call

    async def route(
        self, query: str, *, max_output_tokens: int | None = None, escalate_from: str | None = None, **metadata: Any
    ) -> RouteDecision:
        """Ask which model should answer `query`; keyword arguments are the request's metadata."""
        body = route_body(query, metadata, max_output_tokens, escalate_from)
        return RouteDecision.from_response(await self._call("POST", "/route", body))

    async def reward(
        self,
        decision: RouteDecision | str,
        *,
        quality: float | None = None,
        latency_ms: float | None = None,
        ttft_ms: float | None = None,
        cost_usd: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        error: str | None = None,
        source: str | None = None,
        reward_token: str | None = None,
    ) -> RewardResult:
        """Send one feedback part for a decision (or its event id, with `reward_token` when auth is on)."""
        values = feedback_values(quality, latency_ms, ttft_ms, cost_usd, input_tokens, output_tokens, error, source)
        return reward_result(await self._call("POST", "/reward", reward_body(decision, reward_token, values)))

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/stats", None)

    async def _call(self, method: str, path: str, body: Any) -> Any:
        import aiohttp  # the server's dependency; imported here so `Client` alone stays light

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        data = orjson.dumps(body) if body is not None else None
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                async with self._session.request(method, self.base_url + path, data=data, headers=self.headers) as resp:
                    answer, error = self._outcome(resp.status, await resp.read(), resp.headers.get("Retry-After"))
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                answer, error = None, ConnectionFailed(0, "connection_error", str(exc) or type(exc).__name__)
            if error is None:
                return answer
            wait = self._next_wait(attempt, error, started)
            if wait is None:
                raise error
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
