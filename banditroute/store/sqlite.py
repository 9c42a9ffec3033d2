"""The SQLite event log and policy checkpoints: the one module that knows SQLite.

Tables (append-only but for nothing):
- `decisions`: every routing decision with its compact features, allowed set and pmf;
- `feedback`: every feedback part as received (raw parts, so any reward weight can be replayed);
- `learned`: one row per finished join, with the reward and the VW cost learned (NULL: skipped);
- `checkpoints`: policy snapshots with the last `learned.seq` they include and a SHA-256;
- `config_changes`: run-time changes by an operator (weights, exploration, shadow mode, policy loads),
  replayed at start so they survive a restart.
- `judge_samples`: conversations and answers of proxy events sampled for the judge, bounded in
  rows and age (the only place prompts and answers are kept), and `judge_spend`, the judge's
  running spend.

WAL journal, `synchronous=FULL` by default: a committed batch survives a process kill and a power
cut (with `write(durable=False)`, a kill only).
A Store object is used from one thread at a time (the event log's writer thread).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import sqlite_utils

from banditroute.types import ConfigChange, Decision, FeedbackPart, JudgeSample, LearnedRow

SCHEMA_VERSION = 2


@dataclass(frozen=True, slots=True)
class Checkpoint:
    learned_seq: int
    vw_args: list[str]
    model: bytes
    ts: float


@dataclass(frozen=True, slots=True)
class EventState:
    model: str  # the model chosen
    tenant: str | None
    learned: bool  # its join has finished
    parts: int  # feedback parts stored for it


class StoreError(RuntimeError):
    """The log cannot be written or read (disk full, read-only, corrupt)."""


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._full_sync = True
            self.conn.execute("PRAGMA busy_timeout=5000")
            self.db = sqlite_utils.Database(self.conn)
            self._lock_fd = (
                None
                if str(path) == ":memory:"
                else os.open(self.path.parent / (self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
            )
            self._create()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the event log at {self.path}: {exc}") from exc

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

    def _create(self) -> None:
        db = self.db
        db["decisions"].create(
            {
                "seq": int,
                "event_id": str,
                "ts": float,
                "features": str,
                "models": str,
                "chosen": int,
                "pmf": str,
                "explored": int,
                "reason": str,
                "input_tokens": int,
                "tenant": str,
                "shadow_pmf": str,
                "shadow_chosen": int,
            },
            pk="seq",
            not_null={"event_id", "ts", "features", "models", "chosen", "pmf"},
            if_not_exists=True,
        )
        for column in ("shadow_pmf", "shadow_chosen"):  # logs written before shadow mode existed
            if column not in db["decisions"].columns_dict:
                db["decisions"].add_column(column, str if column == "shadow_pmf" else int)
        db["feedback"].create(
            {
                "seq": int,
                "event_id": str,
                "ts": float,
                "quality": float,
                "latency_ms": float,
                "cost_usd": float,
                "input_tokens": int,
                "output_tokens": int,
                "source": str,
                "error": str,
                "ttft_ms": float,
            },
            pk="seq",
            not_null={"event_id", "ts"},
            if_not_exists=True,
        )
        if "ttft_ms" not in db["feedback"].columns_dict:  # a log written before the proxy existed
            db["feedback"].add_column("ttft_ms", float)
        db["learned"].create(
            {
                "seq": int,
                "event_id": str,
                "ts": float,
                "reward": float,
                "quality": float,
                "cost_usd": float,
                "latency_ms": float,
                "vw_cost": float,
                "defaulted": str,
                "cost_weight": float,
                "latency_weight": float,
            },
            pk="seq",
            not_null={"event_id", "ts"},
            if_not_exists=True,
        )
        db["checkpoints"].create(
            {"seq": int, "ts": float, "learned_seq": int, "vw_args": str, "model": bytes, "sha256": str},
            pk="seq",
            if_not_exists=True,
        )
        db["config_changes"].create(
            {"seq": int, "ts": float, "kind": str, "payload": str},
            pk="seq",
            if_not_exists=True,
        )
        db["judge_samples"].create(
            {
                "event_id": str,
                "ts": float,
                "model": str,
                "prompt": str,
                "response": str,
                "status": str,
                "attempts": int,
                "quality": float,
                "cost_usd": float,
                "note": str,
            },
            pk="event_id",
            not_null={"ts", "status"},
            if_not_exists=True,
        )
        db["judge_spend"].create({"id": int, "usd": float}, pk="id", if_not_exists=True)
        db["judge_samples"].create_index(["status", "ts"], if_not_exists=True)
        db["judge_samples"].create_index(["ts"], if_not_exists=True)
        db["decisions"].create_index(["event_id"], unique=True, if_not_exists=True)
        db["feedback"].create_index(["event_id"], if_not_exists=True)
        db["learned"].create_index(["event_id"], unique=True, if_not_exists=True)
        self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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
    ) -> None:
        """Append one batch in one transaction, in this order (a part never precedes its decision).

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
                self.conn.executemany(
                    "INSERT OR IGNORE INTO decisions (event_id, ts, features, models, chosen, pmf, explored,"
                    " reason, input_tokens, tenant, shadow_pmf, shadow_chosen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            d.event_id,
                            d.ts,
                            d.features,
                            orjson.dumps(d.models).decode(),
                            d.chosen,
                            orjson.dumps(d.pmf).decode(),
                            int(d.explored),
                            d.reason,
                            d.input_tokens,
                            d.tenant,
                            orjson.dumps(d.shadow_pmf).decode() if d.shadow_pmf is not None else None,
                            d.shadow_chosen,
                        )
                        for d in decisions
                    ],
                )
                self.conn.executemany(
                    "INSERT INTO config_changes (ts, kind, payload) VALUES (?,?,?)",
                    [(c.ts, c.kind, orjson.dumps(c.payload).decode()) for c in changes],
                )
                self.conn.executemany(
                    "INSERT INTO feedback (" + _FEEDBACK_COLUMNS + ") VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            p.event_id,
                            p.ts,
                            p.quality,
                            p.latency_ms,
                            p.cost_usd,
                            p.input_tokens,
                            p.output_tokens,
                            p.source,
                            p.error,
                            p.ttft_ms,
                        )
                        for p in parts
                    ],
                )
                self.conn.executemany(
                    "INSERT OR IGNORE INTO learned (seq, event_id, ts, reward, quality, cost_usd, latency_ms,"
                    " vw_cost, defaulted, cost_weight, latency_weight) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            r.seq,
                            r.event_id,
                            r.ts,
                            r.reward,
                            r.quality,
                            r.cost_usd,
                            r.latency_ms,
                            r.vw_cost,
                            r.defaulted,
                            r.cost_weight,
                            r.latency_weight,
                        )
                        for r in learned
                    ],
                )
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
                    # Older snapshots are kept for rollback; the newest few are enough.
                    self.conn.execute(
                        "DELETE FROM checkpoints WHERE seq NOT IN "
                        "(SELECT seq FROM checkpoints ORDER BY seq DESC LIMIT 3)"
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the event log at {self.path}: {exc}") from exc

    # -- reads ------------------------------------------------------------------------------

    def decision(self, event_id: str) -> Decision | None:
        row = self.conn.execute(_DECISION_SELECT + " WHERE event_id = ?", (event_id,)).fetchone()
        return _decision(row) if row else None

    def feedback_count(self, event_id: str) -> int:
        return self.conn.execute("SELECT count(*) FROM feedback WHERE event_id = ?", (event_id,)).fetchone()[0]

    def is_learned(self, event_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM learned WHERE event_id = ?", (event_id,)).fetchone() is not None

    def unlearned_decisions(self) -> list[Decision]:
        """Decisions with no finished join: pending at the last stop, to be waited for again."""
        rows = self.conn.execute(
            _DECISION_SELECT + " WHERE NOT EXISTS (SELECT 1 FROM learned l WHERE l.event_id = decisions.event_id)"
            " ORDER BY seq"
        ).fetchall()
        return [_decision(r) for r in rows]

    def feedback_for_unlearned(self) -> list[FeedbackPart]:
        rows = self.conn.execute(
            "SELECT "
            + _FEEDBACK_COLUMNS
            + " FROM feedback f WHERE NOT EXISTS (SELECT 1 FROM learned l WHERE l.event_id = f.event_id)"
            " ORDER BY seq"
        ).fetchall()
        return [FeedbackPart(*r) for r in rows]

    def feedback(self, event_id: str | None = None) -> list[FeedbackPart]:
        sql = "SELECT " + _FEEDBACK_COLUMNS + " FROM feedback"
        rows = (
            self.conn.execute(sql + " WHERE event_id = ? ORDER BY seq", (event_id,))
            if event_id
            else self.conn.execute(sql + " ORDER BY seq")
        )
        return [FeedbackPart(*r) for r in rows.fetchall()]

    def learned_after(self, seq: int) -> Iterator[tuple[LearnedRow, Decision]]:
        """Finished joins after `seq` with their decisions, in learning order (for replay)."""
        cur = self.conn.execute(
            "SELECT l.seq, l.event_id, l.ts, l.reward, l.quality, l.cost_usd, l.latency_ms, l.vw_cost, l.defaulted,"
            " l.cost_weight, l.latency_weight, "
            + _DECISION_COLUMNS_D
            + " FROM learned l JOIN decisions d ON d.event_id = l.event_id WHERE l.seq > ? ORDER BY l.seq",
            (seq,),
        )
        for row in cur:
            yield LearnedRow(*row[:11]), _decision(row[11:])

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
                    "SELECT seq, " + ", ".join(_DECISION_FIELDS) + " FROM decisions WHERE seq > ? ORDER BY seq",
                    (after_decision,),
                ).fetchall()
                parts = self.conn.execute(
                    "SELECT seq, " + _FEEDBACK_COLUMNS + " FROM feedback WHERE seq > ? ORDER BY seq", (after_feedback,)
                ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the event log at {self.path}: {exc}") from exc
        return [(r[0], _decision(r[1:])) for r in decisions], [(r[0], FeedbackPart(*r[1:])) for r in parts]

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
        q = self.conn.execute
        return {
            "decisions": q("SELECT count(*) FROM decisions").fetchone()[0],
            "feedback_parts": q("SELECT count(*) FROM feedback").fetchone()[0],
            "learned": q("SELECT count(*) FROM learned WHERE vw_cost IS NOT NULL").fetchone()[0],
            "joins_finished": q("SELECT count(*) FROM learned").fetchone()[0],
        }

    def selection_counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT json_extract(models, '$[' || chosen || ']') AS model, count(*) FROM decisions GROUP BY model"
        ).fetchall()
        return {model: n for model, n in rows if model is not None}

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
            "SELECT " + _DECISION_COLUMNS_D + ", l.seq, l.event_id, l.ts, l.reward, l.quality, l.cost_usd,"
            " l.latency_ms, l.vw_cost, l.defaulted, l.cost_weight, l.latency_weight"
            " FROM decisions d LEFT JOIN learned l ON l.event_id = d.event_id ORDER BY d.seq"
        )
        parts: dict[str, list[FeedbackPart]] = {}
        for part in self.feedback():
            parts.setdefault(part.event_id, []).append(part)
        width = len(_DECISION_FIELDS)
        for row in cur:
            decision = _decision(row[:width])
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
        return {model: n for model, n in rows if model is not None}

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

    # -- judge samples ----------------------------------------------------------------------

    def put_sample(self, sample: JudgeSample, keep_after: float, max_samples: int) -> None:
        """Keep one sample, then drop those older than `keep_after` and the oldest beyond `max_samples`."""
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.execute(
                    "INSERT OR IGNORE INTO judge_samples (" + _SAMPLE_COLUMNS + ") VALUES (?,?,?,?,?,?,?,?,?,?)",
                    _sample_row(sample),
                )
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
            "SELECT " + _SAMPLE_COLUMNS + " FROM judge_samples WHERE status = 'new' AND ts <= ? ORDER BY ts LIMIT ?",
            (not_after, limit),
        ).fetchall()
        return [JudgeSample(*r) for r in rows]

    def samples(self) -> list[JudgeSample]:
        rows = self.conn.execute("SELECT " + _SAMPLE_COLUMNS + " FROM judge_samples ORDER BY ts").fetchall()
        return [JudgeSample(*r) for r in rows]

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
        return (
            self.conn.execute(
                "SELECT 1 FROM feedback WHERE event_id = ? AND source = ? AND quality IS NOT NULL LIMIT 1",
                (event_id, source),
            ).fetchone()
            is not None
        )

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


_FEEDBACK_COLUMNS = "event_id, ts, quality, latency_ms, cost_usd, input_tokens, output_tokens, source, error, ttft_ms"
_SAMPLE_COLUMNS = "event_id, ts, model, prompt, response, status, attempts, quality, cost_usd, note"


def _sample_row(s: JudgeSample) -> tuple:
    return (s.event_id, s.ts, s.model, s.prompt, s.response, s.status, s.attempts, s.quality, s.cost_usd, s.note)


_DECISION_FIELDS = (
    "event_id",
    "ts",
    "features",
    "models",
    "chosen",
    "pmf",
    "explored",
    "reason",
    "input_tokens",
    "tenant",
    "shadow_pmf",
    "shadow_chosen",
)
_DECISION_SELECT = "SELECT " + ", ".join(_DECISION_FIELDS) + " FROM decisions"
_DECISION_COLUMNS_D = ", ".join("d." + f for f in _DECISION_FIELDS)


def _decision(row: tuple) -> Decision:
    event_id, ts, features, models, chosen, pmf, explored, reason, input_tokens, tenant, shadow_pmf, shadow = row
    return Decision(
        event_id,
        ts,
        features,
        tuple(orjson.loads(models)),
        chosen,
        tuple(orjson.loads(pmf)),
        bool(explored),
        reason,
        input_tokens or 0,
        tenant,
        shadow_pmf=tuple(orjson.loads(shadow_pmf)) if shadow_pmf is not None else None,
        shadow_chosen=shadow,
    )
