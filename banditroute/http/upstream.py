"""The HTTP client side: one pooled aiohttp ClientSession for upstream models, the judge and /reward.

The exception to "only server.py knows aiohttp": server.py owns the server side, this module the
client side, so no other module (proxy, judge) needs to know aiohttp and both sides stay swappable.
Failures come out as `UpstreamError` with the `error` names of the feedback API (`timeout`,
`connection_error`), never as aiohttp's own exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson


class UpstreamError(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind  # timeout | connection_error | server_error
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float
    read_s: float  # the longest silence between two chunks
    max_connections: int


class Reply:
    """An upstream answer whose status and headers have arrived; read its body once, then close."""

    def __init__(self, response: aiohttp.ClientResponse):
        self._response = response
        self.status = response.status
        self.content_type = response.headers.get("content-type", "application/json")

    async def read(self, limit: int, timeout_s: float) -> bytes:
        """The whole body, within `timeout_s`; a body over `limit` bytes is a server error."""
        try:
            async with asyncio.timeout(timeout_s):
                body = await self._response.content.read(limit + 1)
        except TimeoutError:
            raise UpstreamError("timeout", "the answer did not arrive in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection_error", str(exc) or type(exc).__name__) from None
        if len(body) > limit:
            raise UpstreamError("server_error", f"the answer is larger than {limit} bytes")
        return body

    async def next_chunk(self, timeout_s: float | None = None) -> bytes:
        """The next bytes as they arrive (b"" at the end), waiting at most `timeout_s` if given."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self._response.content.readany()
        except TimeoutError:
            raise UpstreamError("timeout", "the upstream went silent") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection_error", str(exc) or type(exc).__name__) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.next_chunk():
            yield chunk

    def close(self) -> None:
        self._response.close()


class Upstream:
    """The shared session; `start()` inside the running loop, `close()` when done."""

    def __init__(self, timeouts: Timeouts):
        self.timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        t = self.timeouts
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=t.max_connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=t.connect_s, sock_read=t.read_s),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float) -> Reply:
        """POST and wait for the status line and headers, at most `timeout_s`."""
        assert self._session is not None, "Upstream.start() was not called"
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._session.post(url, data=body, headers=dict(headers))
        except TimeoutError:
            raise UpstreamError("timeout", f"no answer from {url} in {timeout_s:.3g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection_error", f"{url}: {exc}") from None
        return Reply(response)

    async def post_json(
        self, url: str, obj: Any, headers: Mapping[str, str], timeout_s: float, limit: int
    ) -> tuple[int, Any]:
        """POST a JSON object; returns the status and the parsed body (None when it is not JSON)."""
        reply = await self.send(url, {"content-type": "application/json", **headers}, orjson.dumps(obj), timeout_s)
        try:
            raw = await reply.read(limit, timeout_s)
        finally:
            reply.close()
        try:
            return reply.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return reply.status, None
