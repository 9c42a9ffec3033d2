"""The client's pure retry rules: Retry-After parsing and the wait schedule."""

from __future__ import annotations

import email.utils
import random

import pytest

from banditroute.client_wire import Retry, error_from, retry_after_seconds

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        (email.utils.formatdate(NOW + 7, usegmt=True), 7.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # a date in the past: retry now
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, NOW) == expected


def test_waits_double_with_jitter_and_stop_at_the_bounds() -> None:
    retry = Retry(attempts=5, backoff_s=0.2, max_backoff_s=0.5, total_s=10.0)
    rng = random.Random(1)
    waits = [retry.wait_s(attempt, None, 0.0, rng) for attempt in range(4)]
    for attempt, wait in enumerate(waits[:4]):
        full = min(0.5, 0.2 * 2**attempt)
        assert wait is not None and full / 2 <= wait <= full
    assert retry.wait_s(4, None, 0.0, rng) is None  # the fifth attempt was the last
    assert retry.wait_s(0, 3.0, 0.0, rng) == 3.0  # Retry-After wins over a shorter backoff
    assert retry.wait_s(0, 3.0, 8.0, rng) is None  # ... unless it would end past total_s


def test_error_bodies_that_are_not_the_servers_still_give_an_error() -> None:
    err = error_from(502, b"<html>bad gateway</html>")
    assert (err.status, err.code, err.message) == (502, "http_502", "<html>bad gateway</html>")
    assert type(error_from(409, b'{"error": {"code": "too_many_parts", "message": "m"}}')).__name__ == "BadRequest"
