"""Garbage-collector settings for a long-running serving process.

CPython's default collects the young generation every 700 net allocations: several times per
`/route`, and every tenth of those also scans the middle generation. What a serving process
allocates per request is short-lived and freed by reference counting; what lives long (the
catalog, the policy's wrappers, aiohttp's machinery, imported modules) is created at start-up. So:
collect once and `gc.freeze()` what start-up built (it is never scanned again), then collect the
young generation every `gen0_threshold` allocations instead of 700. In `make bench` this took the
in-process decision's p99 from about 200 to about 130-150 µs (CPU time); the p50 barely moves.

Only `banditroute serve` (and the benchmark that measures it) calls this; a library user's process
keeps its own settings.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def settle(gen0_threshold: int) -> None:
    """Freeze what exists now and space out young collections; 0 leaves the interpreter's settings."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)


@contextmanager
def settled(gen0_threshold: int) -> Iterator[None]:
    """`settle` for a block (the benchmark measures the serving setting inside a longer process)."""
    before = gc.get_threshold()
    settle(gen0_threshold)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
