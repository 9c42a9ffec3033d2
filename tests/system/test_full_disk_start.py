"""A fresh start on a full disk (issue 15, defect 7): /healthz says `degraded`, not `ok`, before any
write has failed, and `ok` again once there is room.

The disk is a real small file system, a tmpfs mounted for the test (root only; skipped otherwise),
filled up with a file while the server is down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from banditroute.config import default_config_text
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.system


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _serve(tmp_path: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    config = tmp_path / "config.toml"
    config.write_text(default_config_text())
    return subprocess.Popen(
        [sys.executable, "-m", "banditroute.cli", "serve", "--config", str(config), "--port", str(port),
         "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
    )  # fmt: skip


def _get(url: str, path: str, body: bytes | None = None, wait_s: float = 30.0) -> tuple[int, dict]:
    """The answer, once the server answers at all (whatever the status)."""
    deadline = time.monotonic() + wait_s
    request = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/json"})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status, orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_healthz_is_degraded_on_a_fresh_start_with_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    port, data_dir = free_port(), small_disk / "var"
    url = f"http://127.0.0.1:{port}"
    route = orjson.dumps({"query": "is the disk full"})
    proc = _serve(tmp_path, data_dir, port)
    try:
        assert _get(url, "/healthz") == (200, {"status": "ok"})
        assert _get(url, "/route", route)[0] == 200
        proc.kill()
        proc.wait(timeout=10)
        filler = _fill(small_disk)

        proc = _serve(tmp_path, data_dir, port)  # a fresh start: nothing has failed to write yet
        assert _get(url, "/healthz") == (503, {"status": "degraded"})
        assert _get(url, "/stats")[1]["store_healthy"] is False

        filler.unlink()
        assert _get(url, "/healthz") == (200, {"status": "ok"})
        assert _get(url, "/route", route)[0] == 200
    finally:
        proc.kill()
        proc.wait(timeout=10)
