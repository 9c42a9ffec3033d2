"""A real local upstream for the proxy and judge tests: an aiohttp server on 127.0.0.1 speaking the
chat-completions protocol, streaming and not, with `usage`, and with configurable delays and errors.

Behaviour is chosen per upstream model name (`Behaviour`), and a prompt containing `FAIL_FIRST`
fails its first attempt whichever model gets it, so a fallback can be tested without knowing which
model the bandit draws.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

FAIL_FIRST = "[fail-first]"
CLIENT_ERROR = "[client-error]"


@dataclass
class Behaviour:
    reply: str | Callable[[dict[str, Any]], str] = "The answer is 42."
    status: int = 200  # anything else: answered as an error
    delay_s: float = 0.0  # before the status line
    chunk_delay_s: float = 0.0  # between streamed chunks
    usage: bool = True  # include usage (non-streamed; streamed when the client asks)
    break_after_chunks: int | None = None  # streamed: drop the connection after this many chunks


@dataclass
class FakeUpstream:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _failed_once: set[str] = field(default_factory=set)
    server: TestServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        b = self.behaviours.get(body["model"], Behaviour())
        await asyncio.sleep(b.delay_s)
        prompt = orjson.dumps(body["messages"]).decode()
        if FAIL_FIRST in prompt and prompt not in self._failed_once:
            self._failed_once.add(prompt)
            return _error(503, "overloaded")
        if CLIENT_ERROR in prompt:
            return _error(400, "this request is malformed")
        if b.status != 200:
            return _error(b.status, "upstream failure")
        text = b.reply(body) if callable(b.reply) else b.reply
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_tokens + len(text.split()),
        }
        base = {"id": "chatcmpl-fake", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            answer = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            }
            if b.usage:
                answer["usage"] = usage
            return web.json_response(answer)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        chunk = {**base, "object": "chat.completion.chunk"}
        pieces = [{"role": "assistant", "content": ""}] + [{"content": w} for w in _words(text)]
        for i, delta in enumerate(pieces):
            if b.break_after_chunks is not None and i >= b.break_after_chunks:
                assert request.transport is not None
                request.transport.close()
                return response
            await _event(response, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            await asyncio.sleep(b.chunk_delay_s)
        await _event(response, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if b.usage and (body.get("stream_options") or {}).get("include_usage"):
            await _event(response, {**chunk, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


async def _event(response: web.StreamResponse, obj: dict[str, Any]) -> None:
    await response.write(b"data: " + orjson.dumps(obj) + b"\n\n")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "fake", "code": str(status)}}, status=status)
