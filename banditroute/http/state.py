"""The typed keys of what the app holds: the service, the auth gate, the upstream client, the proxy's bookkeeping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from banditroute.auth import Gate
from banditroute.http.upstream import Upstream
from banditroute.service.base import Service

SERVICE = web.AppKey("service", Service)
GATE = web.AppKey("gate", Gate)
UPSTREAM = web.AppKey("upstream", Upstream)
# The proxy's records still being written after their client hung up; awaited at shutdown.
BOOKKEEPING = web.AppKey("bookkeeping", set[asyncio.Task[None]])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
