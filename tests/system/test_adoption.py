"""A new user's path, as real processes: `banditroute init --providers`, `banditroute serve` configured by
the environment, the README's proxy example verbatim with the official OpenAI SDK against a fake
upstream, one decision per SDK call when the upstream fails, `banditroute stats` finding the server;
and a busy port refused in one line."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import ROOT, free_port
from tests.support.fake_upstream import Behaviour, FakeUpstream

README = ROOT / "README.md"
OPENAI_MODELS = ("gpt-4.1-nano", "gpt-4o-mini", "gpt-4.1")  # examples/providers/openai.toml


def readme_proxy_example() -> str:
    text = README.read_text()
    section = text[text.index("## From an OpenAI client") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def banditroute(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "banditroute", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


class Served:
    """`banditroute serve` in a child process; its log lines read as they come."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "banditroute", "serve", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.lines: list[str] = []
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if '"event":"started"' in line:
                    self._started.set()

    def started(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The `started` line, once the server logs it."""
        assert self._started.wait(timeout_s), "no started line:\n" + "".join(self.lines[-20:])
        return orjson.loads(next(line for line in self.lines if '"event":"started"' in line))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._reader.join(timeout=10)


@pytest.fixture
def user_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BANDITROUTE_", "OPENAI_"))}
    yield env


def log_decisions(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])


async def test_init_serve_and_the_readme_proxy_example(
    tmp_path: Path, upstream: FakeUpstream, user_env: dict[str, str]
) -> None:
    config = tmp_path / "banditroute.toml"
    made = banditroute("init", "--providers", "openai", "--out", str(config), env=user_env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    # The one edit a user of a test upstream makes: where OpenAI is, the fake upstream answers.
    config.write_text(config.read_text().replace("https://api.openai.com/v1", upstream.base_url))
    port = free_port()
    env = {
        **user_env,
        "BANDITROUTE_CONFIG": str(config),
        "BANDITROUTE_PORT": str(port),
        "BANDITROUTE_DATA_DIR": str(tmp_path / "log"),
        "OPENAI_API_KEY": "sk-test",
    }
    served = Served([], env, tmp_path)  # no flags: the config, port and data dir come from the environment
    try:
        started = await asyncio.to_thread(served.started)
        url = f"http://127.0.0.1:{port}"
        assert started["url"] == url
        # Logged after the bind: the very first request, without any waiting, is answered.
        with urllib.request.urlopen(url + "/", timeout=5) as resp:
            index = orjson.loads(resp.read())
        assert index["links"]["dashboard"] == "/dashboard" and index["version"]

        # The README's example, verbatim but for the port.
        example = readme_proxy_example()
        assert "http://127.0.0.1:8080/v1" in example
        scope: dict[str, Any] = {"__name__": "readme_example"}
        source = example.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        await asyncio.to_thread(exec, compile(source, str(README), "exec"), scope)
        assert scope["answer"] == "The answer is 42."
        assert scope["model"] in OPENAI_MODELS and re.fullmatch(r"[0-9a-f]{32}", scope["event_id"])
        assert upstream.requests[-1]["model"] == scope["model"]  # openai.toml's upstream_model is the same name

        # A failing upstream: each SDK call (default retries) is one decision in the log, not three.
        db = tmp_path / "log" / "banditroute.db"
        upstream.behaviours = {m: Behaviour(status=500) for m in OPENAI_MODELS}
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
        try:
            for call in range(2):
                before, sent = log_decisions(db), len(upstream.requests)
                with pytest.raises(openai.InternalServerError) as err:
                    await asyncio.to_thread(
                        client.chat.completions.create,
                        model="auto",
                        messages=[{"role": "user", "content": f"status of disk {call}?"}],
                    )
                assert log_decisions(db) == before + 1
                attempts = int(err.value.response.headers["x-banditroute-attempts"])
                assert len(upstream.requests) - sent == attempts == len(OPENAI_MODELS)
        finally:
            client.close()

        # A client command finds the server where the environment says.
        stats = banditroute("stats", env=env, cwd=tmp_path)
        assert stats.returncode == 0, stats.stderr
        assert orjson.loads(stats.stdout)["decisions"] == log_decisions(db) == 3
    finally:
        served.stop()


def test_a_busy_port_is_one_line_and_a_failing_exit(tmp_path: Path, user_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "var"
        run = banditroute("serve", "--port", str(port), "--data-dir", str(data), env=user_env, cwd=tmp_path)
    assert run.returncode != 0
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert lines == [f"banditroute: cannot bind 127.0.0.1:{port}: Address already in use"]
    assert not (data / "banditroute.db").exists()  # refused before the log was opened
