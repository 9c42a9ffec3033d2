"""The event log in PostgreSQL (`[store] url = "postgresql://…"`): one database shared by every host.

The same tables as the SQLite log (`schema.py` names every column once; this module maps the
types), in the connection's current schema, with their own version table and migrations. Driver:
psycopg 3, synchronous (a store is used from one thread, the event log's writer or a reader).

The order of the log. The serving hosts append concurrently, and a sequence number taken inside a
transaction is not its commit order: a reader tailing `seq > n` could pass a row that commits a
moment later with a smaller seq. So every transaction that appends to a tailed table (decisions,
feedback, operator changes) first takes one transaction-scoped advisory lock: seqs are handed out
and committed in the same order, across hosts, as SQLite's one writer does on one machine. The lock
is held for one commit; each host's writer groups everything queued into one batch, so the fleet
commits batches one at a time, not records (`make bench` measures what that costs).

The learner. Exactly one host learns: the one whose session holds the session-scoped advisory lock
`try_lead` takes (service/election.py). A learner's store never reconnects (`reconnect=False`): it
reads and writes on that one session, so once the session is gone (the host died, the network or
the database failed) no write of the old learner can commit, and the lock is free for another.
Keepalives on both ends of the session (`liveness_s`) make the database notice a silent host.

Failures are StoreError; a store that may reconnect does so at its next call.
"""

from __future__ import annotations

import contextlib
import hashlib
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import orjson
import psycopg

from banditroute.store import schema
from banditroute.store.base import Checkpoint, EventState
from banditroute.store.errors import StoreError
from banditroute.store.prune import Pruned
from banditroute.store.schema import (
    DECISION_COLUMNS,
    FEEDBACK_COLUMNS,
    LEARNED_COLUMNS,
    SAMPLE_COLUMNS,
    columns,
    decision_from,
    decision_row,
    feedback_row,
    learned_row,
    sample_row,
)
from banditroute.types import ConfigChange, Decision, FeedbackPart, JudgeSample, LearnedRow

__all__ = ["PG_SCHEMA_VERSION", "PostgresStore", "redacted"]

PG_SCHEMA_VERSION = 1
CHECKPOINTS_KEPT = 3  # as in the SQLite log
CONNECT_TIMEOUT_S = 5
DEFAULT_LIVENESS_S = 15.0  # how soon either end of a connection notices the other is gone
ROWS_PER_FETCH = 2000  # replay and export read the log in pages of this many rows

# Advisory lock keys: (purpose, hashtext(current_schema())), so two routers in two schemas of one
# database never share a lock. The purposes spell "brmi", "brlo", "brle".
_MIGRATE, _LOG_ORDER, _LEARNER = 0x62726D69, 0x62726C6F, 0x62726C65

_PG_TYPES = {int: "bigint", float: "double precision", str: "text", bytes: "bytea"}
_MODEL = "(d.models::jsonb ->> d.chosen::integer)"  # the chosen model's name

T = TypeVar("T")


def redacted(url: str) -> str:
    """The URL without its password (for logs and /stats)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _table(name: str, spec: dict[str, type], *, not_null: set[str], key: str, generated: bool) -> str:
    cols = []
    for column, kind in spec.items():
        if column == key:
            kind_sql = "bigint GENERATED ALWAYS AS IDENTITY" if generated else _PG_TYPES[kind]
            cols.append(f"{column} {kind_sql} PRIMARY KEY")
        else:
            cols.append(f"{column} {_PG_TYPES[kind]}" + (" NOT NULL" if column in not_null else ""))
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})"


def _to_v1(cur: psycopg.Cursor[Any]) -> None:
    """A new schema: the SQLite log's tables, the reward secret every host shares."""
    ddl = [
        _table(
            "decisions",
            schema.DECISIONS,
            not_null={"event_id", "ts", "features", "models", "chosen", "pmf"},
            key="seq",
            generated=True,
        ),
        _table("feedback", schema.FEEDBACK, not_null={"event_id", "ts"}, key="seq", generated=True),
        _table("learned", schema.LEARNED, not_null={"event_id", "ts"}, key="seq", generated=False),
        "CREATE TABLE IF NOT EXISTS checkpoints (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " ts double precision, learned_seq bigint, vw_args text, model bytea, sha256 text)",
        "CREATE TABLE IF NOT EXISTS config_changes (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " ts double precision, kind text, payload text)",
        _table("judge_samples", schema.JUDGE_SAMPLES, not_null={"ts", "status"}, key="event_id", generated=False),
        "CREATE TABLE IF NOT EXISTS judge_spend (id bigint PRIMARY KEY, usd double precision)",
        "CREATE TABLE IF NOT EXISTS reward_secret (id bigint PRIMARY KEY CHECK (id = 1), secret bytea NOT NULL)",
        "CREATE UNIQUE INDEX IF NOT EXISTS decisions_event_id ON decisions (event_id)",
        "CREATE INDEX IF NOT EXISTS feedback_event_id ON feedback (event_id)",
        "CREATE UNIQUE INDEX IF NOT EXISTS learned_event_id ON learned (event_id)",
        "CREATE INDEX IF NOT EXISTS judge_samples_status_ts ON judge_samples (status, ts)",
        "CREATE INDEX IF NOT EXISTS judge_samples_ts ON judge_samples (ts)",
    ]
    for statement in ddl:
        cur.execute(statement.encode())


# MIGRATIONS[v] = (version reached, step) for a schema at version v (0: none yet).
MIGRATIONS: dict[int, tuple[int, Callable[[psycopg.Cursor[Any]], None]]] = {0: (1, _to_v1)}


def _insert(table: str, names: tuple[str, ...]) -> bytes:
    values = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {table} ({columns(names)}) VALUES ({values}) ON CONFLICT DO NOTHING".encode()


_DECISIONS = "SELECT " + columns(DECISION_COLUMNS) + " FROM decisions"
_FEEDBACK = "SELECT " + columns(FEEDBACK_COLUMNS) + " FROM feedback"
_SAMPLES = "SELECT " + columns(SAMPLE_COLUMNS) + " FROM judge_samples"
_INSERT_DECISION = _insert("decisions", DECISION_COLUMNS)
_INSERT_FEEDBACK = _insert("feedback", FEEDBACK_COLUMNS)
_INSERT_LEARNED = _insert("learned", LEARNED_COLUMNS)
_INSERT_SAMPLE = _insert("judge_samples", SAMPLE_COLUMNS)


def over_limit(parts: list[FeedbackPart], stored: dict[str, int], limit: int) -> set[int]:
    """The indices of `parts` that would take their event past `limit` parts, given the parts
    `stored` per event before them; a batch's earlier parts count against its later ones."""
    counts = dict(stored)
    refused = set()
    for i, part in enumerate(parts):
        n = counts.get(part.event_id, 0)
        if n >= limit:
            refused.add(i)
        else:
            counts[part.event_id] = n + 1
    return refused


class PostgresStore:
    """`LogStore` over one PostgreSQL session (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        *,
        reconnect: bool = True,
        liveness_s: float = DEFAULT_LIVENESS_S,
        application_name: str = "banditroute",
    ):
        self.url = url
        self.path = redacted(url)  # what error messages name
        self._reconnect = reconnect
        self._liveness_s = liveness_s
        self._application_name = application_name
        self._conn: psycopg.Connection[Any] | None = None
        self._scope = 0  # hashtext(current_schema()): the second half of every advisory lock key
        self._lost = False  # a store that may not reconnect lost its session
        try:
            self._call(self._migrate)
        except BaseException:
            self.close()
            raise

    # -- the session --------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        # Keepalives on both ends: the client notices a dead server, the server a dead client (and
        # frees the learner's lock) within about `liveness_s` even when no packet says so.
        idle = max(1, int(self._liveness_s / 3))
        interval = max(1, int(self._liveness_s / 6))
        user_timeout_ms = int(self._liveness_s * 1000)
        options = (
            f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} -c tcp_keepalives_count=2"
            f" -c tcp_user_timeout={user_timeout_ms}"
        )
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=self._application_name,
            keepalives=1,
            keepalives_idle=idle,
            keepalives_interval=interval,
            keepalives_count=2,
            tcp_user_timeout=user_timeout_ms,
            options=options,
        )
        row = conn.execute("SELECT hashtext(current_schema())").fetchone()
        self._scope = int(row[0]) if row else 0
        return conn

    def _session(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._lost:
            raise StoreError(f"the session with {self.path} was lost (this store does not reconnect)")
        self._conn = self._connect()
        return self._conn

    def _call(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `fn` on the session; any failure is a StoreError, and a broken session is dropped."""
        try:
            return fn(self._session())
        except psycopg.Error as exc:
            self._drop_if_broken(exc)
            raise StoreError(f"the event log at {self.path}: {exc}".strip()) from exc

    def _drop_if_broken(self, exc: psycopg.Error) -> None:
        conn = self._conn
        if conn is None:
            if not self._reconnect:
                self._lost = True
            return
        if conn.broken or conn.closed or isinstance(exc, psycopg.OperationalError):
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._conn = None
            if not self._reconnect:
                self._lost = True

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
        self._lost = not self._reconnect

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Bring the schema to PG_SCHEMA_VERSION under a lock, so hosts starting together do it once."""
        if self._version(conn) == PG_SCHEMA_VERSION:
            return
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_MIGRATE, self._scope))
            cur.execute("CREATE TABLE IF NOT EXISTS banditroute_schema (version integer NOT NULL)")
            while (version := self._version(conn)) != PG_SCHEMA_VERSION:
                if version > PG_SCHEMA_VERSION:
                    raise StoreError(
                        f"schema version {version} at {self.path} is newer than this banditroute's {PG_SCHEMA_VERSION}"
                    )
                target, step = MIGRATIONS[version]
                step(cur)
                cur.execute("DELETE FROM banditroute_schema")
                cur.execute("INSERT INTO banditroute_schema (version) VALUES (%s)", (target,))

    @staticmethod
    def _version(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT to_regclass('banditroute_schema') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        got = conn.execute("SELECT max(version) FROM banditroute_schema").fetchone()
        return int(got[0]) if got and got[0] is not None else 0

    # -- the learner's election and the fleet's shared secret -------------------------------------

    def try_lead(self) -> bool:
        """Take the learner's lock on this session if no other session holds it (never waits)."""
        return bool(self._one("SELECT pg_try_advisory_lock(%s, %s)", (_LEARNER, self._scope)))

    def leader(self) -> str | None:
        """The application name of the session that holds the learner's lock (None: nobody)."""
        return self._one(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid AND l.objid = %s::oid"
            " AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (_LEARNER, self._scope & 0xFFFFFFFF),
        )

    def shared_secret(self, candidate: bytes) -> bytes:
        """The reward-token secret every host uses: the first host's `candidate`, kept in the database."""

        def run(conn: psycopg.Connection[Any]) -> bytes:
            conn.execute("INSERT INTO reward_secret (id, secret) VALUES (1, %s) ON CONFLICT DO NOTHING", (candidate,))
            row = conn.execute("SELECT secret FROM reward_secret WHERE id = 1").fetchone()
            assert row is not None
            return bytes(row[0])

        return self._call(run)

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
        """Append one batch in one transaction, decisions before parts (as `Store.write`).

        With `max_parts_per_event`, a part whose event already has that many is not stored: returns
        the indices (in `parts`) of those refused. They are counted inside the transaction and under
        the log-order lock, which every writer of parts on every host takes before it writes, so the
        count is of every part committed before, and no concurrent writer commits in between.

        `durable=False` commits with `synchronous_commit = off`: the database keeps the batch if this
        host dies, and loses at most the last few hundred milliseconds of such commits if the
        database server itself crashes.
        """
        decision_rows = [decision_row(d) for d in decisions]
        part_list = list(parts)
        learned_rows = [learned_row(r) for r in learned]
        change_rows = [(c.ts, c.kind, orjson.dumps(c.payload).decode()) for c in changes]

        def run(conn: psycopg.Connection[Any]) -> set[int]:
            refused: set[int] = set()
            with conn.transaction(), conn.cursor() as cur:
                if not durable:
                    cur.execute("SET LOCAL synchronous_commit = off")
                if decision_rows or part_list or change_rows:
                    cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOG_ORDER, self._scope))
                if decision_rows:
                    cur.executemany(_INSERT_DECISION, decision_rows)
                if change_rows:
                    cur.executemany("INSERT INTO config_changes (ts, kind, payload) VALUES (%s, %s, %s)", change_rows)
                if part_list and max_parts_per_event is not None:
                    event_ids = list({p.event_id for p in part_list})
                    cur.execute(
                        b"SELECT event_id, count(*) FROM feedback WHERE event_id = ANY(%s) GROUP BY event_id",
                        (event_ids,),
                    )
                    refused = over_limit(part_list, dict(cur.fetchall()), max_parts_per_event)
                part_rows = [feedback_row(p) for i, p in enumerate(part_list) if i not in refused]
                if part_rows:
                    cur.executemany(_INSERT_FEEDBACK, part_rows)
                if learned_rows:
                    cur.executemany(_INSERT_LEARNED, learned_rows)
                if checkpoint is not None:
                    cur.execute(
                        "INSERT INTO checkpoints (ts, learned_seq, vw_args, model, sha256) VALUES (%s, %s, %s, %s, %s)",
                        (
                            checkpoint.ts,
                            checkpoint.learned_seq,
                            orjson.dumps(checkpoint.vw_args).decode(),
                            checkpoint.model,
                            hashlib.sha256(checkpoint.model).hexdigest(),
                        ),
                    )
                    cur.execute(
                        "DELETE FROM checkpoints WHERE seq NOT IN"
                        " (SELECT seq FROM checkpoints ORDER BY seq DESC LIMIT %s)",
                        (CHECKPOINTS_KEPT,),
                    )
            return refused

        return self._call(run)

    # -- reads ------------------------------------------------------------------------------

    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._call(lambda conn: conn.execute(query.encode(), params).fetchall())

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        def run(conn: psycopg.Connection[Any]) -> Any:
            row = conn.execute(query.encode(), params).fetchone()
            return row[0] if row is not None else None

        return self._call(run)

    def _snapshot(self, reads: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`reads` in one REPEATABLE READ transaction: every query sees the same committed log."""

        def run(conn: psycopg.Connection[Any]) -> T:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return reads(conn)

        return self._call(run)

    def _pages(self, query: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of a long read through a server-side cursor, ROWS_PER_FETCH at a time."""
        try:
            conn = self._session()
            with conn.transaction(), conn.cursor(name="banditroute_pages") as cur:
                cur.itersize = ROWS_PER_FETCH
                cur.execute(query.encode(), params)
                yield from cur
        except psycopg.Error as exc:
            self._drop_if_broken(exc)
            raise StoreError(f"the event log at {self.path}: {exc}".strip()) from exc

    def decision(self, event_id: str) -> Decision | None:
        rows = self._all(_DECISIONS + " WHERE event_id = %s", (event_id,))
        return decision_from(rows[0]) if rows else None

    def feedback_count(self, event_id: str) -> int:
        return int(self._one("SELECT count(*) FROM feedback WHERE event_id = %s", (event_id,)))

    def is_learned(self, event_id: str) -> bool:
        return self._one("SELECT 1 FROM learned WHERE event_id = %s", (event_id,)) is not None

    def feedback(self, event_id: str | None = None) -> list[FeedbackPart]:
        rows = (
            self._all(_FEEDBACK + " WHERE event_id = %s ORDER BY seq", (event_id,))
            if event_id
            else self._all(_FEEDBACK + " ORDER BY seq")
        )
        return [FeedbackPart(*r) for r in rows]

    def event_state(self, event_id: str) -> EventState | None:
        rows = self._all(
            f"SELECT {_MODEL}, d.tenant,"
            " EXISTS (SELECT 1 FROM learned l WHERE l.event_id = d.event_id),"
            " (SELECT count(*) FROM feedback f WHERE f.event_id = d.event_id)"
            " FROM decisions d WHERE d.event_id = %s",
            (event_id,),
        )
        if not rows:
            return None
        model, tenant, learned, parts = rows[0]
        return EventState(model, tenant, bool(learned), int(parts))

    def learned_after(self, seq: int) -> Iterator[tuple[LearnedRow, Decision]]:
        width = len(LEARNED_COLUMNS)
        for row in self._pages(
            f"SELECT {columns(LEARNED_COLUMNS, 'l')}, {columns(DECISION_COLUMNS, 'd')}"
            " FROM learned l JOIN decisions d ON d.event_id = l.event_id WHERE l.seq > %s ORDER BY l.seq",
            (seq,),
        ):
            yield LearnedRow(*row[:width]), decision_from(row[width:])

    def tail(
        self, after_decision: int, after_feedback: int
    ) -> tuple[list[tuple[int, Decision]], list[tuple[int, FeedbackPart]]]:
        """Decisions and parts committed after the given seqs, in one snapshot (see `Store.tail`)."""

        def reads(conn: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]]:
            decisions = conn.execute(
                ("SELECT seq, " + columns(DECISION_COLUMNS) + " FROM decisions WHERE seq > %s ORDER BY seq").encode(),
                (after_decision,),
            ).fetchall()
            parts = conn.execute(
                ("SELECT seq, " + columns(FEEDBACK_COLUMNS) + " FROM feedback WHERE seq > %s ORDER BY seq").encode(),
                (after_feedback,),
            ).fetchall()
            return decisions, parts

        decisions, parts = self._snapshot(reads)
        return [(r[0], decision_from(r[1:])) for r in decisions], [(r[0], FeedbackPart(*r[1:])) for r in parts]

    def unlearned_state(self) -> tuple[list[Decision], list[FeedbackPart], int, int]:
        def reads(conn: psycopg.Connection[Any]) -> tuple[list[Decision], list[FeedbackPart], int, int]:
            decisions = conn.execute(
                (
                    _DECISIONS + " WHERE NOT EXISTS (SELECT 1 FROM learned l WHERE l.event_id = decisions.event_id)"
                    " ORDER BY seq"
                ).encode()
            ).fetchall()
            parts = conn.execute(
                (
                    _FEEDBACK + " WHERE NOT EXISTS (SELECT 1 FROM learned l WHERE l.event_id = feedback.event_id)"
                    " ORDER BY seq"
                ).encode()
            ).fetchall()
            seqs = conn.execute(
                "SELECT (SELECT coalesce(max(seq), 0) FROM decisions), (SELECT coalesce(max(seq), 0) FROM feedback)"
            ).fetchone()
            assert seqs is not None
            return [decision_from(r) for r in decisions], [FeedbackPart(*r) for r in parts], seqs[0], seqs[1]

        return self._snapshot(reads)

    def max_learned_seq(self) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM learned"))

    def newest_checkpoint_seq(self) -> int:
        """The serving hosts' version check: one index probe, whatever the size of the log."""
        return int(self._one("SELECT coalesce(max(seq), 0) FROM checkpoints"))

    def checkpoints(self) -> list[tuple[Checkpoint, bool]]:
        out = []
        for learned_seq, args, model, ts, sha in self._all(
            "SELECT learned_seq, vw_args, model, ts, sha256 FROM checkpoints ORDER BY seq DESC"
        ):
            model = bytes(model or b"")
            out.append(
                (Checkpoint(learned_seq, orjson.loads(args), model, ts), hashlib.sha256(model).hexdigest() == sha)
            )
        return out

    def config_changes(self) -> list[ConfigChange]:
        return [change for _, change in self.config_changes_after(0)]

    def config_changes_after(self, seq: int) -> list[tuple[int, ConfigChange]]:
        rows = self._all("SELECT seq, ts, kind, payload FROM config_changes WHERE seq > %s ORDER BY seq", (seq,))
        return [(n, ConfigChange(ts, kind, orjson.loads(payload))) for n, ts, kind, payload in rows]

    def joined_log(self) -> Iterator[tuple[Decision, LearnedRow | None, list[FeedbackPart]]]:
        parts: dict[str, list[FeedbackPart]] = {}
        for part in self.feedback():
            parts.setdefault(part.event_id, []).append(part)
        width = len(DECISION_COLUMNS)
        for row in self._pages(
            f"SELECT {columns(DECISION_COLUMNS, 'd')}, {columns(LEARNED_COLUMNS, 'l')}"
            " FROM decisions d LEFT JOIN learned l ON l.event_id = d.event_id ORDER BY d.seq"
        ):
            decision = decision_from(row[:width])
            learned = LearnedRow(*row[width:]) if row[width] is not None else None
            yield decision, learned, parts.get(decision.event_id, [])

    # -- what /stats and the rules restore at start ------------------------------------------------

    def counts(self) -> dict[str, int]:
        row = self._all(
            "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM feedback),"
            " (SELECT count(*) FROM learned WHERE vw_cost IS NOT NULL), (SELECT count(*) FROM learned)"
        )[0]
        return {"decisions": row[0], "feedback_parts": row[1], "learned": row[2], "joins_finished": row[3]}

    def selection_counts(self) -> dict[str, int]:
        rows = self._all(f"SELECT {_MODEL} AS model, count(*) FROM decisions d GROUP BY model")
        return {model: n for model, n in rows if model is not None}

    def shadow_outcomes(self) -> list[tuple[float, float]]:
        rows = self._all(
            "SELECT l.reward, d.chosen, d.shadow_pmf FROM decisions d JOIN learned l ON l.event_id = d.event_id"
            " WHERE d.shadow_pmf IS NOT NULL AND l.reward IS NOT NULL ORDER BY l.seq"
        )
        return [(r, orjson.loads(pmf)[chosen]) for r, chosen, pmf in rows]

    def shadow_counts(self) -> tuple[int, int]:
        row = self._all(
            "SELECT count(*), coalesce(sum((chosen = shadow_chosen)::int), 0) FROM decisions"
            " WHERE shadow_pmf IS NOT NULL"
        )[0]
        return int(row[0]), int(row[1])

    def rewards_per_model(self) -> dict[str, int]:
        rows = self._all(
            f"SELECT {_MODEL} AS model, count(*) FROM learned l JOIN decisions d ON d.event_id = l.event_id"
            " WHERE l.vw_cost IS NOT NULL GROUP BY model"
        )
        return {model: n for model, n in rows if model is not None}

    def spend_since(self, ts: float) -> dict[str, float]:
        rows = self._all(
            "SELECT d.tenant, sum(l.cost_usd) FROM learned l JOIN decisions d ON d.event_id = l.event_id"
            " WHERE l.ts >= %s AND d.tenant IS NOT NULL AND l.cost_usd IS NOT NULL GROUP BY d.tenant",
            (ts,),
        )
        return {tenant: usd for tenant, usd in rows}

    def recent_latencies(self, per_model: int) -> list[tuple[str, float]]:
        rows = self._all(
            "SELECT model, latency_ms FROM (SELECT " + _MODEL + " AS model, l.latency_ms, l.seq,"
            " row_number() OVER (PARTITION BY " + _MODEL + " ORDER BY l.seq DESC) AS rank"
            " FROM learned l JOIN decisions d ON d.event_id = l.event_id"
            " WHERE l.latency_ms IS NOT NULL AND strpos(l.defaulted, 'latency') = 0) ranked"
            " WHERE rank <= %s AND model IS NOT NULL ORDER BY seq",
            (per_model,),
        )
        return [(model, latency) for model, latency in rows]

    def outcomes_per_model(self, through_seq: int | None = None) -> list[tuple[str, int, float, int, float]]:
        """As `Store.outcomes_per_model`: per chosen model, the observed qualities and known costs."""
        observed = "(l.quality IS NOT NULL AND strpos(',' || l.defaulted || ',', ',quality,') = 0)"
        rows = self._all(
            f"SELECT {_MODEL} AS model, count(*) FILTER (WHERE {observed}),"
            f" coalesce(sum(l.quality) FILTER (WHERE {observed}), 0.0), count(l.cost_usd),"
            " coalesce(sum(l.cost_usd), 0.0)"
            " FROM learned l JOIN decisions d ON d.event_id = l.event_id WHERE l.seq <= %s GROUP BY model",
            (through_seq if through_seq is not None else 2**63 - 1,),
        )
        return [(r[0], int(r[1]), float(r[2]), int(r[3]), float(r[4])) for r in rows if r[0] is not None]

    # -- retention ------------------------------------------------------------------------------

    def prune_batch(self, before_ts: float, limit: int) -> Pruned:
        """Retention is not implemented on PostgreSQL: the configuration refuses `store.retention_days`
        with a PostgreSQL URL, so no caller reaches this."""
        raise StoreError("store.retention_days is not supported with a PostgreSQL store yet")

    # -- the judge's queue --------------------------------------------------------------------

    def put_sample(self, sample: JudgeSample, keep_after: float, max_samples: int) -> None:
        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(_INSERT_SAMPLE, sample_row(sample))
                self._prune(conn, keep_after, max_samples)

        self._call(run)

    def prune_samples(self, keep_after: float, max_samples: int) -> None:
        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                self._prune(conn, keep_after, max_samples)

        self._call(run)

    @staticmethod
    def _prune(conn: psycopg.Connection[Any], keep_after: float, max_samples: int) -> None:
        conn.execute("DELETE FROM judge_samples WHERE ts < %s", (keep_after,))
        conn.execute(
            "DELETE FROM judge_samples WHERE event_id NOT IN"
            " (SELECT event_id FROM judge_samples ORDER BY ts DESC LIMIT %s)",
            (max_samples,),
        )

    def due_samples(self, not_after: float, limit: int) -> list[JudgeSample]:
        rows = self._all(_SAMPLES + " WHERE status = 'new' AND ts <= %s ORDER BY ts LIMIT %s", (not_after, limit))
        return [JudgeSample(*r) for r in rows]

    def samples(self) -> list[JudgeSample]:
        return [JudgeSample(*r) for r in self._all(_SAMPLES + " ORDER BY ts")]

    def finish_sample(self, sample: JudgeSample, spent_usd: float) -> None:
        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(
                    "UPDATE judge_samples SET status = %s, attempts = %s, quality = %s, cost_usd = %s, note = %s"
                    " WHERE event_id = %s",
                    (sample.status, sample.attempts, sample.quality, sample.cost_usd, sample.note, sample.event_id),
                )
                self._add_spend(conn, spent_usd)

        self._call(run)

    def add_judge_spend(self, usd: float) -> None:
        self._call(lambda conn: self._add_spend(conn, usd))

    @staticmethod
    def _add_spend(conn: psycopg.Connection[Any], usd: float) -> None:
        if usd:
            conn.execute(
                "INSERT INTO judge_spend (id, usd) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET usd = judge_spend.usd + excluded.usd",
                (usd,),
            )

    def judge_spend(self) -> float:
        usd = self._one("SELECT usd FROM judge_spend WHERE id = 1")
        return float(usd) if usd is not None else 0.0

    def has_quality_from(self, event_id: str, source: str) -> bool:
        return (
            self._one(
                "SELECT 1 FROM feedback WHERE event_id = %s AND source = %s AND quality IS NOT NULL LIMIT 1",
                (event_id, source),
            )
            is not None
        )
