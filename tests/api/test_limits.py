"""Request limits and bounded queues on a real server: oversized, slow, deep and crowded requests."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tests.conftest import Api, make_config


async def raw_exchange(api: Api, head: bytes, body: bytes = b"", pause_s: float = 0.0) -> tuple[int, bytes]:
    """Send raw bytes on a fresh connection and read the status line and what follows."""
    reader, writer = await asyncio.open_connection(api.server.host, api.server.port)
    try:
        writer.write(head + body)
        await writer.drain()
        if pause_s:
            await asyncio.sleep(pause_s)
        answer = await asyncio.wait_for(reader.read(65536), timeout=30)
        return int(answer.split(b" ", 2)[1]), answer
    finally:
        writer.close()


def post_head(path: str, content_length: int, extra: bytes = b"") -> bytes:
    return (
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n"
        ).encode()
        + extra
        + b"\r\n"
    )


async def test_a_10mb_query_is_refused_before_its_body_is_read(api: Api) -> None:
    # Only the headers and the first bytes are sent: the answer cannot depend on reading the rest.
    status, answer = await raw_exchange(api, post_head("/route", 10_485_760), b'{"query": "xxxx')
    assert status == 413 and b"body_too_large" in answer
    assert (await api.get("/stats"))[1]["decisions"] == 0


@pytest.mark.parametrize("config", [{"server": {"read_timeout_s": 0.2}}], indirect=True)
async def test_a_slow_body_times_out_with_408(api: Api) -> None:
    status, answer = await raw_exchange(api, post_head("/route", 100), b'{"query": "slo', pause_s=0.5)
    assert status == 408 and b"request_timeout" in answer
    assert (await api.get("/healthz"))[0] == 200


async def test_too_many_headers_is_refused(api: Api) -> None:
    crowd = b"".join(f"X-H{i}: v\r\n".encode() for i in range(api.service.config.server.max_headers + 10))
    status, _ = await raw_exchange(api, post_head("/route", 17, crowd), b'{"query": "hi"}  ')
    assert status in (400, 431)
    assert (await api.post("/route", {"query": "still up"}))[0] == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"query": "x", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "invalid_json"),
        (b'{"query": "x", "metadata": {"a": [[["deep"]]]}}', "invalid_metadata"),
        (b'{"query": "x", "metadata": {' + b",".join(b'"k%d": 1' % i for i in range(33)) + b"}}", "invalid_metadata"),
        (b'{"query": "x", "metadata": {"' + b"k" * 65 + b'": 1}}', "invalid_metadata"),
        (b'{"query": "x", "metadata": {"tags": ["' + b"v" * 600 + b'"]}}', "invalid_metadata"),
    ],
)
async def test_metadata_size_and_depth(api: Api, body: bytes, code: str) -> None:
    status, answer = await api.post("/route", data=body)
    assert (status, answer["error"]["code"]) == (400, code)


@pytest.fixture
def config(tmp_path: Path, request: pytest.FixtureRequest):
    return make_config(tmp_path, **getattr(request, "param", {}))


@pytest.mark.parametrize("config", [{"server": {"max_write_queue": 5}}], indirect=True)
async def test_a_full_write_queue_answers_503_and_loses_nothing_acknowledged(api: Api) -> None:
    release = threading.Event()
    writer_blocked = asyncio.ensure_future(api.service.eventlog.call(release.wait))  # a stalled disk
    tasks = [asyncio.ensure_future(api.post("/route", {"query": f"q{i}"})) for i in range(30)]
    await asyncio.sleep(0.5)
    release.set()
    await writer_blocked
    answers = await asyncio.gather(*tasks)
    ok = [body["event_id"] for status, body in answers if status == 200]
    refused = [body for status, body in answers if status == 503]
    assert len(ok) + len(refused) == 30
    assert refused and all(b["error"]["code"] == "overloaded" for b in refused)
    assert 1 <= len(ok) <= 5 + 1  # the queue bound, plus the batch the writer had already taken
    await asyncio.sleep(0.1)
    stored = await api.service.eventlog.call(api.service.store.counts)
    assert stored["decisions"] == len(ok) == (await api.get("/stats"))[1]["decisions"]
    async with api.session.post(api.server.make_url("/route"), json={"query": "again"}) as resp:
        assert resp.status == 200
