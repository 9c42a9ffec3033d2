"""The connection: a request aiohttp's HTTP parser rejects gets the documented JSON error, and is
logged without its content.

aiohttp answers such a request (a control character in a header, a malformed request line, a bad
Content-Length) before any middleware runs, with a plain-text body that echoes the offending bytes,
and logs them with a traceback: a key in an `Authorization` header would reach the log. These
classes replace only that answer; every other request goes through the app as usual.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from aiohttp.http import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from banditroute.http.middleware import error_response

log = structlog.get_logger("banditroute.http")


class _Connection(RequestHandler):
    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        # The parser's message quotes the request's bytes: only the kind of error is kept.
        kind = type(exc).__name__
        log.warning("bad_http_request", status=status, error=kind, remote=request.remote)
        response = error_response(status, "bad_request", f"the request is not valid HTTP/1.1 ({kind})")
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """An AppRunner whose connections answer parser errors as above."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # the app's start-up runs here
        return _Server(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
