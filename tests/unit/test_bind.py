"""`serve` binds before anything starts: what `http.app.bind` answers for a free, busy or unknown address."""

from __future__ import annotations

import socket

import pytest

from banditroute.http.app import BindError, bind


def test_a_free_port_is_bound_and_not_yet_listening() -> None:
    [sock] = bind("127.0.0.1", 0)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        with pytest.raises(OSError), socket.create_connection((host, port), timeout=1):
            pass  # bound only: aiohttp's site listens on it
    finally:
        sock.close()


def test_a_busy_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BindError, match=rf"^cannot bind 127\.0\.0\.1:{port}: Address already in use$"):
            bind("127.0.0.1", port)


def test_an_address_that_does_not_resolve_is_one_clear_error() -> None:
    with pytest.raises(BindError, match=r"^cannot bind no-such-host\.invalid:8080: "):
        bind("no-such-host.invalid", 8080)
