"""Retention on the SQLite log: remove the events `banditroute.retention` lets go, in bounded batches.

A mixin of `Store`, like the judge's queue (samples.py): the same connection, the same writer. What is
removed is added to `pruned_totals`, which `Store.counts`, `selection_counts` and `rewards_per_model`
add back, so the counters a restart reads from the log do not shrink. Deleted rows are overwritten
(`secure_delete`), not left readable in the file's free pages.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from banditroute.retention import covered_seq
from banditroute.store.errors import StoreError

if TYPE_CHECKING:
    from banditroute.store.sqlite import Checkpoint

# pruned_totals names: these, and SELECTED + model, REWARDED + model
DECISIONS, PARTS, LEARNED, JOINS = "decisions", "feedback_parts", "learned", "joins_finished"
SELECTED, REWARDED = "selected:", "rewarded:"


@dataclass(slots=True)
class Pruned:
    """What one prune removed."""

    decisions: int = 0
    feedback_parts: int = 0
    learned: int = 0  # learned rows (joins finished), with or without a reward
    covered_seq: int = 0  # the learned seq every checkpoint covered
    batches: int = 0
    per_model: Counter[str] = field(default_factory=Counter)
    event_ids: list[str] = field(default_factory=list)  # of the last batch

    def add(self, other: Pruned) -> None:
        self.decisions += other.decisions
        self.feedback_parts += other.feedback_parts
        self.learned += other.learned
        self.covered_seq = other.covered_seq
        self.batches += other.batches
        self.per_model.update(other.per_model)
        self.event_ids = other.event_ids


class Pruning:
    conn: sqlite3.Connection
    path: Path

    if TYPE_CHECKING:  # Store's

        def _writing(self) -> contextlib.AbstractContextManager[None]: ...
        def checkpoints(self) -> list[tuple[Checkpoint, bool]]: ...

    def prune_batch(self, before_ts: float, limit: int) -> Pruned:
        """Remove at most `limit` events older than `before_ts` whose joins every checkpoint covers, in
        one transaction (a short hold of the write lock: the service's writes go between batches)."""
        try:
            with self._writing(), _secure_delete(self.conn), self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                return self._prune_batch(before_ts, limit)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot prune the event log at {self.path}: {exc}") from exc

    def _prune_batch(self, before_ts: float, limit: int) -> Pruned:
        q = self.conn.execute
        # A checkpoint whose checksum fails is never loaded, so it covers nothing; recovery falls back past it.
        covered = covered_seq(ckpt.learned_seq for ckpt, ok in self.checkpoints() if ok)
        out = Pruned(covered_seq=covered, batches=1)
        if covered == 0:
            return out
        # Decisions are appended in time order (within a batch's milliseconds): the candidates lie
        # before the first young one, so the scan reads no more than the old rows left.
        young = q("SELECT seq FROM decisions WHERE ts >= ? ORDER BY seq LIMIT 1", (before_ts,)).fetchone()
        bound = young[0] if young is not None else q("SELECT coalesce(max(seq), 0) + 1 FROM decisions").fetchone()[0]
        rows = q(
            "SELECT d.event_id, json_extract(d.models, '$[' || d.chosen || ']'), l.vw_cost IS NOT NULL"
            " FROM decisions d JOIN learned l ON l.event_id = d.event_id"
            " WHERE d.seq < ? AND d.ts < ? AND l.seq <= ? ORDER BY d.seq LIMIT ?",
            (bound, before_ts, covered, limit),
        ).fetchall()
        if not rows:
            return out
        out.event_ids = [event_id for event_id, _, _ in rows]
        ids = [(event_id,) for event_id in out.event_ids]
        parts_before = self.conn.total_changes
        self.conn.executemany("DELETE FROM feedback WHERE event_id = ?", ids)
        out.feedback_parts = self.conn.total_changes - parts_before
        self.conn.executemany("DELETE FROM learned WHERE event_id = ?", ids)
        self.conn.executemany("DELETE FROM decisions WHERE event_id = ?", ids)
        out.decisions = out.learned = len(rows)
        tallies: Counter[str] = Counter({DECISIONS: len(rows), JOINS: len(rows), PARTS: out.feedback_parts})
        for _, model, rewarded in rows:
            tallies[LEARNED] += rewarded
            if model is not None:
                tallies[SELECTED + model] += 1
                tallies[REWARDED + model] += rewarded
                out.per_model[model] += 1
        self.conn.executemany(
            "INSERT INTO pruned_totals (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + excluded.n",
            list((+tallies).items()),  # without the zero counts
        )
        return out

    def prune(self, before_ts: float, batch: int = 5000) -> Pruned:
        """Every event `prune_batch` may remove, batch after batch (the CLI's; the service runs batches)."""
        total = Pruned()
        while True:
            done = self.prune_batch(before_ts, batch)
            total.add(done)
            if done.decisions < batch:
                return total

    def pruned_totals(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT name, n FROM pruned_totals").fetchall())


@contextlib.contextmanager
def _secure_delete(conn: sqlite3.Connection) -> Iterator[None]:
    """Deleted rows overwritten with zeros, for this connection's deletes only (the writes stay fast)."""
    conn.execute("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        conn.execute("PRAGMA secure_delete=OFF")
