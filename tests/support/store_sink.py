"""A router's log sink straight into a real Store, without the writer thread (for recovery and retention)."""

from __future__ import annotations

from banditroute.store.sqlite import Store
from banditroute.types import Decision, LearnedRow


class StoreSink:
    """A process that logs each record as it happens, straight into the store (no writer thread)."""

    def __init__(self, store: Store):
        self.store = store

    def decision(self, decision: Decision) -> None:
        self.store.write(decisions=[decision])

    def learned(self, row: LearnedRow) -> None:
        self.store.write(learned=[row])
