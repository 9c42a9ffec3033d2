"""structlog set-up: JSON lines on stdout, one per decision and per reward, rendered by orjson.

A log line that cannot be written (full disk, closed pipe) is dropped and counted, never raised:
the log must not take down the requests it describes.
"""

from __future__ import annotations

import logging
import sys
from typing import BinaryIO

import orjson
import structlog


class DropOnError:
    """A binary stream whose failed writes drop the line instead of raising; `dropped` counts them."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.dropped = 0

    def write(self, data: bytes) -> int:
        try:
            return self.stream.write(data)
        except OSError:
            self.dropped += 1
            return 0

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            self.dropped += 1


def configure(level: str = "info", stream: BinaryIO | None = None) -> DropOnError:
    numeric = logging.getLevelName(level.upper())
    out = DropOnError(stream if stream is not None else sys.stdout.buffer)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(out),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    return out
