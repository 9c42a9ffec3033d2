"""A headless chromium driven over the DevTools protocol (CDP) on loopback: real pointer events, page state read back.

Only what the dashboard test needs: open a page, evaluate JavaScript, move the mouse. The browser
listens on a port it picks itself (`--remote-debugging-port=0`) and says which on stderr.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

LISTENING = re.compile(rb"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")


class DevToolsError(RuntimeError):
    """The browser did not start, or a command or script failed."""


class Browser:
    def __init__(self, chromium: str, flags: Sequence[str], profile: Path, url: str, timeout_s: float = 30.0):
        self._argv = [chromium, *flags, f"--user-data-dir={profile}", "--remote-debugging-port=0", url]
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Self:
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            port = await asyncio.wait_for(self._port(), self._timeout_s)
            self._session = aiohttp.ClientSession()
            page = await asyncio.wait_for(self._page(port), self._timeout_s)
            self._ws = await self._session.ws_connect(page, max_msg_size=0)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()

    async def _port(self) -> int:
        assert self._proc is not None and self._proc.stderr is not None
        async for line in self._proc.stderr:
            match = LISTENING.search(line)
            if match:
                return int(match.group(2))
        raise DevToolsError(f"chromium exited ({await self._proc.wait()}) before it listened")

    async def _page(self, port: int) -> str:
        """The page target's WebSocket URL (the one tab the command line opened)."""
        assert self._session is not None
        while True:
            async with self._session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            await asyncio.sleep(0.05)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        call = next(self._ids)
        await self._ws.send_json({"id": call, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self._ws.receive_json(), self._timeout_s)
            if msg.get("id") == call:  # events (no id) are not needed here
                if "error" in msg:
                    raise DevToolsError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_until(self, expression: str, poll_s: float = 0.05) -> Any:
        """Evaluate `expression` until it is truthy (a navigation in between is retried), at most timeout_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        while True:
            try:
                value = await self.evaluate(expression)
            except DevToolsError:  # the context was replaced by the page's own navigation
                value = None
            if value:
                return value
            if loop.time() > deadline:
                raise DevToolsError(f"{expression[:80]} stayed false for {self._timeout_s:g} s")
            await asyncio.sleep(poll_s)

    async def move_mouse(self, x: float, y: float) -> None:
        await self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
