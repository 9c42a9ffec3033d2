"""The SQLite event log and policy checkpoints: with `schema.py` and `samples.py`, the one place that knows SQLite.

The tables are described in `schema.py`. WAL journal; `write()` commits with `synchronous=FULL`: a
committed batch survives a process kill and a power cut. `write(durable=False)` commits with
`synchronous=NORMAL`: the batch survives a process kill at once and a power cut from the next fsync
of the WAL (a durable commit, a checkpoint, or `walsync.WalSyncer`, which `server.durability =
"process"` runs with `without_autocheckpoint()`).
A Store object is used from one thread at a time (the event log's writer thread).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from banditroute.store import prune, schema
from banditroute.store.base import Checkpoint, EventState
from banditroute.store.errors import PartsLimitReached, StoreError
from banditroute.store.prune import Pruning
from banditroute.store.samples import JudgeSamples
from banditroute.store.schema import (
    DECISION_COLUMNS,
    FEEDBACK_COLUMNS,
    LEARNED_COLUMNS,
    columns,
    decision_from,
    decision_row,
    feedback_row,
    insert,
    learned_row,
)
from banditroute.types import ConfigChange, Decision, FeedbackPart, LearnedRow

__all__ = ["Checkpoint", "EventState", "PartsLimitReached", "Store", "StoreError"]

# Older snapshots are kept for rollback; the newest few are enough.
CHECKPOINTS_KEPT = 3
# How long a connection waits for another process's write lock before SQLite reports "busy".
BUSY_TIMEOUT_MS = 5000

_DECISIONS = "SELECT " + columns(DECISION_COLUMNS) + " FROM decisions"
_FEEDBACK = "SELECT " + columns(FEEDBACK_COLUMNS) + " FROM feedback"
_INSERT_DECISION = insert("INSERT OR IGNORE", "decisions", DECISION_COLUMNS)
_INSERT_FEEDBACK = insert("INSERT", "feedback", FEEDBACK_COLUMNS)
# A part stored only while its event has fewer than the limit: the count and the insert in one
# statement of the writer's transaction (one writer at a time across processes: `_writing`).
_INSERT_FEEDBACK_WITHIN = (
    f"INSERT INTO feedback ({columns(FEEDBACK_COLUMNS)}) SELECT {', '.join('?' * len(FEEDBACK_COLUMNS))}"
    " WHERE (SELECT count(*) FROM feedback WHERE event_id = ?) < ?"
)
_INSERT_LEARNED = insert("INSERT OR IGNORE", "learned", LEARNED_COLUMNS)


class Store(JudgeSamples, Pruning):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._full_sync = True
            self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._lock_fd = (
                None
                if str(path) == ":memory:"
                else os.open(self.path.parent / (self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
            )
            with self._writing():
                schema.migrate(self.conn)
        except (OSError, sqlite3.Error, schema.SchemaTooNew) as exc:
            raise StoreError(f"cannot open the event log at {self.path}: {exc}") from exc

    def without_autocheckpoint(self) -> None:
        """Never checkpoint inside a commit (SQLite's automatic checkpoint fsyncs twice): for a writer
        whose WAL another connection checkpoints (`walsync.WalSyncer`), so no commit waits for a disk."""
        try:
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot configure the event log at {self.path}: {exc}") from exc

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time across processes (the multi-process mode appends to one file).

        Writers queue on an flock, which the kernel hands to the next one as soon as it is released;
        left to SQLite, a busy writer polls with sleeps of 1, 2, 5, 10... ms, which in the profile
        made two serving processes slower than one. Uncontended, it costs two system calls.
        """
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- writes -----------------------------------------------------------------------------

    def write(
        self,
        decisions: Iterable[Decision] = (),
        parts: Iterable[FeedbackPart] = (),
        learned: Iterable[LearnedRow] = (),
        checkpoint: Checkpoint | None = None,
        changes: Iterable[ConfigChange] = (),
        *,
        durable: bool = True,
        max_parts_per_event: int | None = None,
    ) -> set[int]:
        """Append one batch in one transaction, in this order (a part never precedes its decision).

        With `max_parts_per_event`, a part whose event already has that many is not stored: returns
        the indices (in `parts`) of those refused, counted inside the transaction, so concurrent
        writers (other processes too) never store more than the limit.

        `durable=False` commits without an fsync (`synchronous=NORMAL`, WAL): the batch survives a
        killed process at once, a power cut only from the next durable commit or WAL checkpoint on,
        which syncs everything before it. For records no client is waiting on.
        """
        try:
            if durable != self._full_sync:
                self.conn.execute("PRAGMA synchronous=" + ("FULL" if durable else "NORMAL"))
                self._full_sync = durable
            with self._writing(), self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany(_INSERT_DECISION, [decision_row(d) for d in decisions])
                self.conn.executemany(
                    "INSERT INTO config_changes (ts, kind, payload) VALUES (?,?,?)",
                    [(c.ts, c.kind, orjson.dumps(c.payload).decode()) for c in changes],
                )
                refused = self._insert_parts(list(parts), max_parts_per_event)
                self.conn.executemany(_INSERT_LEARNED, [learned_row(r) for r in learned])
                if checkpoint is not None:
                    self.conn.execute(
                        "INSERT INTO checkpoints (ts, learned_seq, vw_args, model, sha256) VALUES (?,?,?,?,?)",
                        (
                            checkpoint.ts,
                            checkpoint.learned_seq,
                            orjson.dumps(checkpoint.vw_args).decode(),
                            checkpoint.model,
                            hashlib.sha256(checkpoint.model).hexdigest(),
                        ),
                    )
                    self.conn.execute(
                        "DELETE FROM checkpoints WHERE seq NOT IN "
                        "(SELECT seq FROM checkpoints ORDER BY seq DESC LIMIT ?)",
                        (CHECKPOINTS_KEPT,),
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the event log at {self.path}: {exc}") from exc
        return refused

    def _insert_parts(self, parts: list[FeedbackPart], limit: int | None) -> set[int]:
        if limit is None:
            self.conn.executemany(_INSERT_FEEDBACK, [feedback_row(p) for p in parts])
            return set()
        rows = [(*feedback_row(p), p.event_id, limit) for p in parts]
        # Usually every part fits: one executemany. Else the batch's parts are inserted again one by
        # one, to learn which were refused.
        self.conn.execute("SAVEPOINT parts")
        if self.conn.executemany(_INSERT_FEEDBACK_WITHIN, rows).rowcount == len(rows):
            self.conn.execute("RELEASE parts")
            return set()
        self.conn.execute("ROLLBACK TO parts")
        self.conn.execute("RELEASE parts")
        return {i for i, row in enumerate(rows) if self.conn.execute(_INSERT_FEEDBACK_WITHIN, row).rowcount != 1}

    # -- reads ------------------------------------------------------------------------------

    def decision(self, event_id: str) -> Decision | None:
        row = self.conn.execute(_DECISIONS + " WHERE event_id = ?", (event_id,)).fetchone()
        return decision_from(row) if row else None

    def feedback_count(self, event_id: str) -> int:
        return self.conn.execute("SELECT count(*) FROM feedback WHERE event_id = ?", (event_id,)).fetchone()[0]

    def is_learned(self, event_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM learned WHERE event_id = ?", (event_id,)).fetchone() is not None

    def unlearned_decisions(self) -> list[Decision]:
        """Decisions with no finished join: pending at the last stop, to be waited for again."""
        rows = self.conn.execute(
            _DECISIONS + " WHERE NOT EXISTS (SELECT 1 FROM learned l WHERE l.event_id = decisions.event_id)"
            " ORDER BY seq"
        ).fetchall()
        return [decision_from(r) for r in rows]

    def feedback_for_unlearned(self) -> list[FeedbackPart]:
        rows = self.conn.execute(
            _FEEDBACK + " WHERE NOT EXISTS (SELECT 1 FROM learned l WHERE l.event_id = feedback.event_id) ORDER BY seq"
        ).fetchall()
        return [FeedbackPart(*r) for r in rows]

    def feedback(self, event_id: str | None = None) -> list[FeedbackPart]:
        rows = (
            self.conn.execute(_FEEDBACK + " WHERE event_id = ? ORDER BY seq", (event_id,))
            if event_id
            else self.conn.execute(_FEEDBACK + " ORDER BY seq")
        )
        return [FeedbackPart(*r) for r in rows.fetchall()]

    def learned_after(self, seq: int) -> Iterator[tuple[LearnedRow, Decision]]:
        """Finished joins after `seq` with their decisions, in learning order (for replay)."""
        cur = self.conn.execute(
            f"SELECT {columns(LEARNED_COLUMNS, 'l')}, {columns(DECISION_COLUMNS, 'd')}"
            " FROM learned l JOIN decisions d ON d.event_id = l.event_id WHERE l.seq > ? ORDER BY l.seq",
            (seq,),
        )
        width = len(LEARNED_COLUMNS)
        for row in cur:
            yield LearnedRow(*row[:width]), decision_from(row[width:])

    # -- tailing (the multi-process learner reads what the serving processes append) -------------

    def tail(
        self, after_decision: int, after_feedback: int
    ) -> tuple[list[tuple[int, Decision]], list[tuple[int, FeedbackPart]]]:
        """Decisions and feedback parts appended after the given seqs, read in one snapshot.

        One read transaction: a part is committed after its decision, so every part returned has its
        decision either returned here or read before.
        """
        try:
            with self._read_snapshot():
                decisions = self.conn.execute(
                    "SELECT seq, " + columns(DECISION_COLUMNS) + " FROM decisions WHERE seq > ? ORDER BY seq",
                    (after_decision,),
                ).fetchall()
                parts = self.conn.execute(
                    "SELECT seq, " + columns(FEEDBACK_COLUMNS) + " FROM feedback WHERE seq > ? ORDER BY seq",
                    (after_feedback,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the event log at {self.path}: {exc}") from exc
        return [(r[0], decision_from(r[1:])) for r in decisions], [(r[0], FeedbackPart(*r[1:])) for r in parts]

    def unlearned_state(self) -> tuple[list[Decision], list[FeedbackPart], int, int]:
        """What a starting learner waits for, and the seqs to tail from, read in one snapshot."""
        with self._read_snapshot():
            decisions = self.unlearned_decisions()
            parts = self.feedback_for_unlearned()
            max_decision = self.conn.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()[0]
            max_feedback = self.conn.execute("SELECT coalesce(max(seq), 0) FROM feedback").fetchone()[0]
        return decisions, parts, max_decision, max_feedback

    def event_state(self, event_id: str) -> EventState | None:
        """What a serving process needs to accept a part for an event; None for an unknown event."""
        row = self.conn.execute(
            "SELECT json_extract(d.models, '$[' || d.chosen || ']'), d.tenant,"
            " EXISTS (SELECT 1 FROM learned l WHERE l.event_id = d.event_id),"
            " (SELECT count(*) FROM feedback f WHERE f.event_id = d.event_id)"
            " FROM decisions d WHERE d.event_id = ?",
            (event_id,),
        ).fetchone()
        return EventState(row[0], row[1], bool(row[2]), row[3]) if row is not None else None

    def newest_checkpoint_seq(self) -> int:
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()[0]

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def max_learned_seq(self) -> int:
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM learned").fetchone()[0]

    def checkpoints(self) -> list[tuple[Checkpoint, bool]]:
        """Snapshots newest first, each with whether its checksum matches."""
        rows = self.conn.execute(
            "SELECT learned_seq, vw_args, model, ts, sha256 FROM checkpoints ORDER BY seq DESC"
        ).fetchall()
        out = []
        for learned_seq, args, model, ts, sha in rows:
            model = bytes(model or b"")
            out.append(
                (Checkpoint(learned_seq, orjson.loads(args), model, ts), hashlib.sha256(model).hexdigest() == sha)
            )
        return out

    def counts(self) -> dict[str, int]:
        """Everything ever logged, what retention removed included (prune.py)."""
        q = self.conn.execute
        pruned = self.pruned_totals()
        return {
            "decisions": q("SELECT count(*) FROM decisions").fetchone()[0] + pruned.get(prune.DECISIONS, 0),
            "feedback_parts": q("SELECT count(*) FROM feedback").fetchone()[0] + pruned.get(prune.PARTS, 0),
            "learned": q("SELECT count(*) FROM learned WHERE vw_cost IS NOT NULL").fetchone()[0]
            + pruned.get(prune.LEARNED, 0),
            "joins_finished": q("SELECT count(*) FROM learned").fetchone()[0] + pruned.get(prune.JOINS, 0),
        }

    def selection_counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT json_extract(models, '$[' || chosen || ']') AS model, count(*) FROM decisions GROUP BY model"
        ).fetchall()
        return _plus_pruned({model: n for model, n in rows if model is not None}, self.pruned_totals(), prune.SELECTED)

    def config_changes(self) -> list[ConfigChange]:
        return [change for _, change in self.config_changes_after(0)]

    def config_changes_after(self, seq: int) -> list[tuple[int, ConfigChange]]:
        """The operator's changes logged after `seq`, with their seqs (the multi-process mode follows them)."""
        rows = self.conn.execute(
            "SELECT seq, ts, kind, payload FROM config_changes WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()
        return [(n, ConfigChange(ts, kind, orjson.loads(payload))) for n, ts, kind, payload in rows]

    def joined_log(self) -> Iterator[tuple[Decision, LearnedRow | None, list[FeedbackPart]]]:
        """Every decision in log order with its finished join (None: still pending) and all its parts."""
        cur = self.conn.execute(
            f"SELECT {columns(DECISION_COLUMNS, 'd')}, {columns(LEARNED_COLUMNS, 'l')}"
            " FROM decisions d LEFT JOIN learned l ON l.event_id = d.event_id ORDER BY d.seq"
        )
        parts: dict[str, list[FeedbackPart]] = {}
        for part in self.feedback():
            parts.setdefault(part.event_id, []).append(part)
        width = len(DECISION_COLUMNS)
        for row in cur:
            decision = decision_from(row[:width])
            learned = LearnedRow(*row[width:]) if row[width] is not None else None
            yield decision, learned, parts.get(decision.event_id, [])

    def shadow_outcomes(self) -> list[tuple[float, float]]:
        """For each learned shadow-mode event: (reward, the bandit's probability of the served model)."""
        rows = self.conn.execute(
            "SELECT l.reward, d.chosen, d.shadow_pmf FROM decisions d JOIN learned l ON l.event_id = d.event_id"
            " WHERE d.shadow_pmf IS NOT NULL AND l.reward IS NOT NULL ORDER BY l.seq"
        ).fetchall()
        return [(r, orjson.loads(pmf)[chosen]) for r, chosen, pmf in rows]

    def shadow_counts(self) -> tuple[int, int]:
        """(shadow-mode decisions, those where the bandit's pick matched the served baseline)."""
        n, matched = self.conn.execute(
            "SELECT count(*), coalesce(sum(chosen = shadow_chosen), 0) FROM decisions WHERE shadow_pmf IS NOT NULL"
        ).fetchone()
        return n, matched

    def rewards_per_model(self) -> dict[str, int]:
        """Rewards learned per chosen model: the cold-start counts after a restart."""
        rows = self.conn.execute(
            "SELECT json_extract(d.models, '$[' || d.chosen || ']') AS model, count(*)"
            " FROM learned l JOIN decisions d ON d.event_id = l.event_id WHERE l.vw_cost IS NOT NULL GROUP BY model"
        ).fetchall()
        return _plus_pruned({model: n for model, n in rows if model is not None}, self.pruned_totals(), prune.REWARDED)

    def outcomes_per_model(self, through_seq: int | None = None) -> list[tuple[str, int, float, int, float]]:
        """Per chosen model, over the finished joins (up to learned seq `through_seq`; None: all): (model,
        qualities observed, their sum, costs known, their sum); a quality filled in by default is not
        counted (the dashboard's per-model table)."""
        observed = "(l.quality IS NOT NULL AND instr(',' || l.defaulted || ',', ',quality,') = 0)"
        rows = self.conn.execute(
            f"SELECT json_extract(d.models, '$[' || d.chosen || ']') AS model, coalesce(sum({observed}), 0),"
            f" coalesce(sum(CASE WHEN {observed} THEN l.quality END), 0.0), count(l.cost_usd),"
            " coalesce(sum(l.cost_usd), 0.0)"
            " FROM learned l JOIN decisions d ON d.event_id = l.event_id WHERE l.seq <= ? GROUP BY model",
            (through_seq if through_seq is not None else 2**63 - 1,),
        ).fetchall()
        return [tuple(r) for r in rows if r[0] is not None]

    def spend_since(self, ts: float) -> dict[str, float]:
        """USD per tenant of the joins finished at or after `ts` (the budgets' current period)."""
        rows = self.conn.execute(
            "SELECT d.tenant, sum(l.cost_usd) FROM learned l JOIN decisions d ON d.event_id = l.event_id"
            " WHERE l.ts >= ? AND d.tenant IS NOT NULL AND l.cost_usd IS NOT NULL GROUP BY d.tenant",
            (ts,),
        ).fetchall()
        return {tenant: usd for tenant, usd in rows}

    def recent_latencies(self, per_model: int) -> list[tuple[str, float]]:
        """The latest reported (not defaulted) latencies, at most `per_model` per chosen model, oldest first."""
        model = "json_extract(d.models, '$[' || d.chosen || ']')"
        return self.conn.execute(
            "SELECT model, latency_ms FROM (SELECT " + model + " AS model, l.latency_ms, l.seq,"
            " row_number() OVER (PARTITION BY " + model + " ORDER BY l.seq DESC) AS rank"
            " FROM learned l JOIN decisions d ON d.event_id = l.event_id"
            " WHERE l.latency_ms IS NOT NULL AND instr(l.defaulted, 'latency') = 0)"
            " WHERE rank <= ? AND model IS NOT NULL ORDER BY seq",
            (per_model,),
        ).fetchall()

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _plus_pruned(counts: dict[str, int], pruned: dict[str, int], prefix: str) -> dict[str, int]:
    """Per-model counts of the log with retention's tallies (`prefix` + model) added."""
    for name, n in pruned.items():
        if name.startswith(prefix):
            model = name[len(prefix) :]
            counts[model] = counts.get(model, 0) + n
    return counts
