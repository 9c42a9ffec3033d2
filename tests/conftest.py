"""Shared test helpers: configs on a temp dir, a real aiohttp server on loopback, a real client."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from banditroute.config import Config, default_config_text, load_config
from banditroute.http.app import SERVICE, create_app
from banditroute.service.base import Service
from tests.support.fake_upstream import FakeUpstream
from tools import pgcluster
from tools.launch import ServerDidNotStart, wait_healthy_async

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
SYSTEM_TESTS = Path(__file__).parent / "system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder is the marker: a test under tests/system/ is a system test (`-m "not system"` skips it)."""
    for item in items:
        if item.path.is_relative_to(SYSTEM_TESTS):
            item.add_marker(pytest.mark.system)


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

    async def post(
        self, path: str, body: Any = None, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"data": io.BytesIO(data)} if data is not None else {"json": body}
        async with self.session.post(self.server.make_url(path), headers=headers, **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.get(self.server.make_url(path), headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def raw(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Any request; the status, the headers and the body as bytes."""
        body = io.BytesIO(data) if data is not None else None
        async with self.session.request(
            method, self.server.make_url(path), json=json, data=body, headers=headers
        ) as resp:
            return resp.status, dict(resp.headers), await resp.read()


async def start_api(config: Config, config_path: Path | None = None) -> Api:
    server = TestServer(create_app(config, config_path), host="127.0.0.1")
    await server.start_server()
    return Api(server, aiohttp.ClientSession())


async def stop_api(api: Api) -> None:
    await api.session.close()
    await api.server.close()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    """A fake OpenAI-compatible upstream on loopback (the proxy's models and the judge)."""
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def api(config: Config) -> AsyncIterator[Api]:
    client = await start_api(config)
    yield client
    await stop_api(client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`banditroute serve` in a child process on loopback, killed with SIGKILL on demand.

    Its output goes through a pipe into `lines` (a file would count against a file-size limit).
    """

    def __init__(
        self,
        tmp_path: Path,
        checkpoint_interval_s: float = 0.2,
        *,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
        args: tuple[str, ...] = (),
    ):
        self.args = args  # more `serve` arguments
        self.port = free_port()
        self.data_dir = tmp_path / "var"
        self.config = tmp_path / "config.toml"
        self.config.write_text(
            default_config_text().replace(
                "[server]\n", f"[server]\ncheckpoint_interval_s = {checkpoint_interval_s}\n", 1
            )
        )
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        self.preexec_fn = preexec_fn
        self.lines: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "banditroute.cli",
                "serve",
                "--config",
                str(self.config),
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=ROOT,
            preexec_fn=self.preexec_fn,
        )
        self._reader = threading.Thread(target=self._drain, args=(self.proc,), daemon=True)
        self._reader.start()
        try:
            await wait_healthy_async(self.url, self.proc, timeout_s=20.0)
        except ServerDidNotStart as exc:
            raise RuntimeError(f"{exc}:\n" + "\n".join(self.lines[-20:])) from None

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self.lines.append(line.decode(errors="replace"))

    def log_text(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


async def post(
    session: aiohttp.ClientSession, url: str, body: dict, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    async with session.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.fixture(scope="session")
def postgres() -> Iterator[pgcluster.PostgresCluster]:
    """One throwaway PostgreSQL cluster for the session (initdb + pg_ctl in a temp dir, loopback)."""
    reason = pgcluster.unavailable()
    if reason is not None:
        pytest.skip(reason)
    cluster = pgcluster.PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(postgres: pgcluster.PostgresCluster) -> str:
    """A fresh database in the session's cluster: its URL."""
    return postgres.create_database()
