"""Event ids and the per-event sampling draw: a decision is reproducible from its id. No state but the id pool."""

from __future__ import annotations

import hashlib
import os


class _RandomIds:
    """Event ids from the OS's CSPRNG, read in blocks: one getrandom call per 4,096 ids instead of one
    per decision (the call cost ~15 µs here, a tenth of a decision). A forked child starts a block of
    its own, so processes never share ids."""

    _BLOCK = 16 * 4096

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def reset(self) -> None:
        self._pool, self._next = b"", 0

    def take(self) -> str:
        if self._next >= len(self._pool):
            self._pool, self._next = os.urandom(self._BLOCK), 0
        start = self._next
        self._next = start + 16
        return self._pool[start : start + 16].hex()


_IDS = _RandomIds()
os.register_at_fork(after_in_child=_IDS.reset)


def new_event_id() -> str:
    """128 random bits, hex: unguessable, so only the caller that got it can refer to it."""
    return _IDS.take()


def uniform_from(event_id: str) -> float:
    """The sampling draw in [0, 1) for an event, so a decision can be reproduced from its id."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


def sample(pmf: list[float], u: float) -> int:
    total = 0.0
    for i, p in enumerate(pmf):
        total += p
        if u < total:
            return i
    return max(range(len(pmf)), key=pmf.__getitem__)  # rounding left u above the sum
