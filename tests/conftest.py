"""Shared test helpers: configs on a temp dir, a real aiohttp server on loopback, a real client."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from banditroute.config import Config, default_config_text, load_config
from banditroute.server import SERVICE, create_app
from banditroute.service import Service

FIXTURES = Path(__file__).parent / "fixtures"


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    server = {"data_dir": str(tmp_path / "var"), "checkpoint_interval_s": 3600.0, "expire_interval_s": 0.05}
    server.update(sections.pop("server", {}))
    return load_config().with_overrides(server=server, **sections)


def config_text(rules: str | None = None) -> str:
    """The bundled config text, with its [rules] table replaced by `rules` when given."""
    default = default_config_text()
    if rules is None:
        return default
    start, end = default.index("[rules]"), default.index("[[models]]")
    return default[:start] + rules + "\n\n" + default[end:]


class Api:
    """A real HTTP client against a real server on 127.0.0.1."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession):
        self.server = server
        self.session = session

    @property
    def service(self) -> Service:
        return self.server.app[SERVICE]

    async def post(self, path: str, body: Any = None, *, data: bytes | None = None) -> tuple[int, Any]:
        kwargs = {"data": io.BytesIO(data)} if data is not None else {"json": body}
        async with self.session.post(self.server.make_url(path), **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.server.make_url(path)) as resp:
            return resp.status, await resp.json(content_type=None)

    async def raw(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Any request; the status, the headers and the body as bytes."""
        body = io.BytesIO(data) if data is not None else None
        async with self.session.request(method, self.server.make_url(path), json=json, data=body,
                                        headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()


async def start_api(config: Config, config_path: Path | None = None) -> Api:
    server = TestServer(create_app(config, config_path), host="127.0.0.1")
    await server.start_server()
    return Api(server, aiohttp.ClientSession())


async def stop_api(api: Api) -> None:
    await api.session.close()
    await api.server.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def api(config: Config) -> AsyncIterator[Api]:
    client = await start_api(config)
    yield client
    await stop_api(client)
