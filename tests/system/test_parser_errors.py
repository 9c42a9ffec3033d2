"""Requests aiohttp's HTTP parser rejects (issue 15, defect 5): the documented JSON error, and no API
key (nor anything else the request held) in the server's log or in the answer."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.system

KEY = "sk-parser-test-3c1e9a77f0d24b"

BAD_REQUESTS = [
    # a control character right after the key
    b"POST /route HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\x01\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    # a header line without a colon, after the key
    b"GET /healthz HTTP/1.1\r\nAuthorization: Bearer " + KEY.encode() + b"\r\nbroken header\r\n\r\n",
    # a request line that is not HTTP, holding the key
    b"GET /healthz?k=" + KEY.encode() + b" NOTHTTP\r\n\r\n",
    # an invalid Content-Length
    b"POST /route HTTP/1.1\r\nAuthorization: Bearer " + KEY.encode() + b"\r\nContent-Length: x\r\n\r\n",
]


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_parser_errors_are_json_and_keys_never_reach_the_log(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, env={"BANDITROUTE_API_KEYS": f'[{{"key": "{KEY}", "scopes": ["route"]}}]'})
    async with aiohttp.ClientSession() as session:
        await server.start(session)
        try:
            for raw in BAD_REQUESTS:
                answer = _send(server.port, raw)
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.split(b" ", 2)[1] == b"400", answer[:200]
                assert b"content-type: application/json" in head.lower()
                error = orjson.loads(body)["error"]
                assert error["code"] == "bad_request" and error["message"]
                assert KEY.encode() not in answer
            async with session.get(server.url + "/healthz") as resp:
                assert resp.status == 200  # still serving
        finally:
            server.kill()
    log = server.log_text()
    assert "bad_http_request" in log, "each rejected request is logged, without its content"
    assert KEY not in log
