"""The log's tables, their column lists (each written once), migrations keyed on `PRAGMA user_version`,
and the row <-> dataclass conversions.

Tables (append-only but for the judge's queue and the checkpoints kept):
- `decisions`: every routing decision with its compact features, allowed set and pmf;
- `feedback`: every feedback part as received (raw parts, so any reward weight can be replayed);
- `learned`: one row per finished join, with the reward and the VW cost learned (NULL: skipped);
- `checkpoints`: policy snapshots with the last `learned.seq` they include and a SHA-256;
- `config_changes`: run-time changes by an operator (weights, exploration, shadow mode, policy loads),
  replayed at start so they survive a restart;
- `judge_samples`: conversations and answers of proxy events sampled for the judge, bounded in
  rows and age (the only place prompts and answers are kept), and `judge_spend`, the judge's
  running spend;
- `pruned_totals`: what retention removed (`[store] retention_days`, prune.py), by name: decisions,
  feedback parts, learned rows, selections and rewards per model, so the counts read back stay whole.

Versions: 0 is a new file; 1 a log from the first release (decisions, feedback, learned and
checkpoints only, without `decisions.shadow_pmf`/`shadow_chosen`); 2 is the schema below, whose
`feedback.ttft_ms` the proxy added without a version bump; 3 adds `pruned_totals`. A file with a newer version than this
code knows is refused rather than written with a schema it does not understand.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import orjson
import sqlite_utils

from banditroute.types import Decision, FeedbackPart, JudgeSample, LearnedRow

SCHEMA_VERSION = 3

# The tables as sqlite_utils creates them, column name -> Python type, in column order. Each column
# list below is derived from these, so a column is named once (the dataclasses must agree: a test checks).
DECISIONS: dict[str, type] = {
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
}
FEEDBACK: dict[str, type] = {
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
}
LEARNED: dict[str, type] = {
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
}
JUDGE_SAMPLES: dict[str, type] = {
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
}

# `seq` of decisions and feedback is the log's own order, assigned by SQLite; `learned.seq` is the
# router's learning order, so it is written and read with the row.
DECISION_COLUMNS = tuple(c for c in DECISIONS if c != "seq")
FEEDBACK_COLUMNS = tuple(c for c in FEEDBACK if c != "seq")
LEARNED_COLUMNS = tuple(LEARNED)
SAMPLE_COLUMNS = tuple(JUDGE_SAMPLES)


def columns(names: tuple[str, ...], alias: str = "") -> str:
    """`a, b, c`, or `x.a, x.b, x.c` with an alias, for a SELECT or INSERT."""
    prefix = alias + "." if alias else ""
    return ", ".join(prefix + n for n in names)


def insert(verb: str, table: str, names: tuple[str, ...]) -> str:
    return f"{verb} INTO {table} ({columns(names)}) VALUES ({', '.join('?' * len(names))})"


# -- rows <-> dataclasses ------------------------------------------------------------------------


def decision_row(d: Decision) -> tuple:
    return (
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


def decision_from(row: tuple) -> Decision:
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


# FeedbackPart, LearnedRow and JudgeSample have exactly their table's columns, in order: a row is
# built from the column names and read back positionally.


def feedback_row(p: FeedbackPart) -> tuple:
    return tuple(getattr(p, c) for c in FEEDBACK_COLUMNS)


def learned_row(r: LearnedRow) -> tuple:
    return tuple(getattr(r, c) for c in LEARNED_COLUMNS)


def sample_row(s: JudgeSample) -> tuple:
    return tuple(getattr(s, c) for c in SAMPLE_COLUMNS)


# -- migrations ----------------------------------------------------------------------------------


class SchemaTooNew(RuntimeError):
    """The file was written by a newer version of banditroute."""


def _to_v2(db: sqlite_utils.Database) -> None:
    """From a new file or a version 1 log: every missing table and index, then the columns added late."""
    db.table("decisions").create(
        DECISIONS, pk="seq", not_null={"event_id", "ts", "features", "models", "chosen", "pmf"}, if_not_exists=True
    )
    db.table("feedback").create(FEEDBACK, pk="seq", not_null={"event_id", "ts"}, if_not_exists=True)
    db.table("learned").create(LEARNED, pk="seq", not_null={"event_id", "ts"}, if_not_exists=True)
    db.table("checkpoints").create(
        {"seq": int, "ts": float, "learned_seq": int, "vw_args": str, "model": bytes, "sha256": str},
        pk="seq",
        if_not_exists=True,
    )
    db.table("config_changes").create(
        {"seq": int, "ts": float, "kind": str, "payload": str}, pk="seq", if_not_exists=True
    )
    db.table("judge_samples").create(JUDGE_SAMPLES, pk="event_id", not_null={"ts", "status"}, if_not_exists=True)
    db.table("judge_spend").create({"id": int, "usd": float}, pk="id", if_not_exists=True)
    for table, late in (("decisions", ("shadow_pmf", "shadow_chosen")), ("feedback", ("ttft_ms",))):
        have = db.table(table).columns_dict
        spec = DECISIONS if table == "decisions" else FEEDBACK
        for column in late:
            if column not in have:
                db.table(table).add_column(column, spec[column])
    db.table("judge_samples").create_index(["status", "ts"], if_not_exists=True)
    db.table("judge_samples").create_index(["ts"], if_not_exists=True)
    db.table("decisions").create_index(["event_id"], unique=True, if_not_exists=True)
    db.table("feedback").create_index(["event_id"], if_not_exists=True)
    db.table("learned").create_index(["event_id"], unique=True, if_not_exists=True)


def _to_v3(db: sqlite_utils.Database) -> None:
    """Retention's tallies (store/prune.py)."""
    db.table("pruned_totals").create({"name": str, "n": int}, pk="name", not_null={"n"}, if_not_exists=True)


# MIGRATIONS[v] = (version reached, step) for a file at version v; the next schema change adds a
# step from SCHEMA_VERSION and bumps it. The step to 2 is idempotent, so 0 and 1 share it.
MIGRATIONS: dict[int, tuple[int, Callable[[sqlite_utils.Database], None]]] = {
    0: (2, _to_v2),
    1: (2, _to_v2),
    2: (3, _to_v3),
}


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file to SCHEMA_VERSION, one step per transaction; a current file costs one PRAGMA read.

    Several processes may open one file at once (the multi-process mode): each step takes the write
    lock and reads the version again under it, so a step another process has just made is not redone.
    """
    db = sqlite_utils.Database(conn)
    while (version := user_version(conn)) != SCHEMA_VERSION:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"schema version {version} is newer than this banditroute's {SCHEMA_VERSION}")
        target, step = MIGRATIONS[version]
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            if user_version(conn) == version:
                step(db)
                conn.execute(f"PRAGMA user_version={target}")
