"""The judge's sample queue (`judge_samples`) and its running spend (`judge_spend`).

A mixin of `Store` rather than a class of its own: the queue lives in the same file, is written by
the same writer thread over the same connection (an own connection would be a second writer on the
file), and its callers (the proxy, the judge worker) already hold a Store. Keeping it here keeps
the log's reads and writes in `sqlite.py` about the log alone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from banditroute.store.errors import StoreError
from banditroute.store.schema import SAMPLE_COLUMNS, columns, insert, sample_row
from banditroute.types import JudgeSample

_INSERT_SAMPLE = insert("INSERT OR IGNORE", "judge_samples", SAMPLE_COLUMNS)
_SELECT_SAMPLES = "SELECT " + columns(SAMPLE_COLUMNS) + " FROM judge_samples"


class JudgeSamples:
    conn: sqlite3.Connection
    path: Path

    def put_sample(self, sample: JudgeSample, keep_after: float, max_samples: int) -> None:
        """Keep one sample, then drop those older than `keep_after` and the oldest beyond `max_samples`."""
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.execute(_INSERT_SAMPLE, sample_row(sample))
                self._prune(keep_after, max_samples)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write a judge sample at {self.path}: {exc}") from exc

    def prune_samples(self, keep_after: float, max_samples: int) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self._prune(keep_after, max_samples)

    def _prune(self, keep_after: float, max_samples: int) -> None:
        self.conn.execute("DELETE FROM judge_samples WHERE ts < ?", (keep_after,))
        self.conn.execute(
            "DELETE FROM judge_samples WHERE event_id NOT IN"
            " (SELECT event_id FROM judge_samples ORDER BY ts DESC LIMIT ?)",
            (max_samples,),
        )

    def due_samples(self, not_after: float, limit: int) -> list[JudgeSample]:
        """Samples waiting for the judge whose event happened at or before `not_after`, oldest first."""
        rows = self.conn.execute(
            _SELECT_SAMPLES + " WHERE status = 'new' AND ts <= ? ORDER BY ts LIMIT ?", (not_after, limit)
        ).fetchall()
        return [JudgeSample(*r) for r in rows]

    def samples(self) -> list[JudgeSample]:
        return [JudgeSample(*r) for r in self.conn.execute(_SELECT_SAMPLES + " ORDER BY ts").fetchall()]

    def finish_sample(self, sample: JudgeSample, spent_usd: float) -> None:
        """Record a sample's verdict (or why it has none) and add what the judge spent on it."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "UPDATE judge_samples SET status = ?, attempts = ?, quality = ?, cost_usd = ?, note = ?"
                " WHERE event_id = ?",
                (sample.status, sample.attempts, sample.quality, sample.cost_usd, sample.note, sample.event_id),
            )
            self._add_spend(spent_usd)

    def add_judge_spend(self, usd: float) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self._add_spend(usd)

    def _add_spend(self, usd: float) -> None:
        if usd:
            self.conn.execute(
                "INSERT INTO judge_spend (id, usd) VALUES (1, ?)"
                " ON CONFLICT(id) DO UPDATE SET usd = usd + excluded.usd",
                (usd,),
            )

    def judge_spend(self) -> float:
        row = self.conn.execute("SELECT usd FROM judge_spend WHERE id = 1").fetchone()
        return float(row[0]) if row else 0.0

    def has_quality_from(self, event_id: str, source: str) -> bool:
        """Whether a part from `source` already graded the event (the judge does not grade it again)."""
        row = self.conn.execute(
            "SELECT 1 FROM feedback WHERE event_id = ? AND source = ? AND quality IS NOT NULL LIMIT 1",
            (event_id, source),
        ).fetchone()
        return row is not None
