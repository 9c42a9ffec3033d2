"""Migrations keyed on `PRAGMA user_version`: logs written by earlier code stay readable."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from banditroute.store import schema
from banditroute.store.sqlite import Store, StoreError
from banditroute.types import Decision, FeedbackPart, JudgeSample, LearnedRow

# The schema version 2 as the code before `schema.py` created it (sqlite_master of a new file).
V2_SCHEMA = """
CREATE TABLE "decisions" ("seq" INTEGER PRIMARY KEY, "event_id" TEXT NOT NULL, "ts" REAL NOT NULL,
  "features" TEXT NOT NULL, "models" TEXT NOT NULL, "chosen" INTEGER NOT NULL, "pmf" TEXT NOT NULL,
  "explored" INTEGER, "reason" TEXT, "input_tokens" INTEGER, "tenant" TEXT, "shadow_pmf" TEXT, "shadow_chosen" INTEGER);
CREATE TABLE "feedback" ("seq" INTEGER PRIMARY KEY, "event_id" TEXT NOT NULL, "ts" REAL NOT NULL, "quality" REAL,
  "latency_ms" REAL, "cost_usd" REAL, "input_tokens" INTEGER, "output_tokens" INTEGER, "source" TEXT, "error" TEXT,
  "ttft_ms" REAL);
CREATE TABLE "learned" ("seq" INTEGER PRIMARY KEY, "event_id" TEXT NOT NULL, "ts" REAL NOT NULL, "reward" REAL,
  "quality" REAL, "cost_usd" REAL, "latency_ms" REAL, "vw_cost" REAL, "defaulted" TEXT, "cost_weight" REAL,
  "latency_weight" REAL);
CREATE TABLE "checkpoints" ("seq" INTEGER PRIMARY KEY, "ts" REAL, "learned_seq" INTEGER, "vw_args" TEXT,
  "model" BLOB, "sha256" TEXT);
CREATE TABLE "config_changes" ("seq" INTEGER PRIMARY KEY, "ts" REAL, "kind" TEXT, "payload" TEXT);
CREATE TABLE "judge_samples" ("event_id" TEXT PRIMARY KEY, "ts" REAL NOT NULL, "model" TEXT, "prompt" TEXT,
  "response" TEXT, "status" TEXT NOT NULL, "attempts" INTEGER, "quality" REAL, "cost_usd" REAL, "note" TEXT);
CREATE TABLE "judge_spend" ("id" INTEGER PRIMARY KEY, "usd" REAL);
CREATE INDEX "idx_judge_samples_status_ts" ON "judge_samples" ("status", "ts");
CREATE INDEX "idx_judge_samples_ts" ON "judge_samples" ("ts");
CREATE UNIQUE INDEX "idx_decisions_event_id" ON "decisions" ("event_id");
CREATE INDEX "idx_feedback_event_id" ON "feedback" ("event_id");
CREATE UNIQUE INDEX "idx_learned_event_id" ON "learned" ("event_id");
PRAGMA user_version=2;
INSERT INTO decisions (event_id, ts, features, models, chosen, pmf, explored, reason, input_tokens, tenant,
  shadow_pmf, shadow_chosen) VALUES ('e1', 1.5, '|w hi', '["a","b"]', 1, '[0.25,0.75]', 1, 'why', 3, 't1',
  '[0.5,0.5]', 0);
INSERT INTO feedback (event_id, ts, quality, source, ttft_ms) VALUES ('e1', 2.0, 0.8, 'user', 12.0);
INSERT INTO learned VALUES (1, 'e1', 2.0, 0.8, 0.8, 0.0, 10.0, 0.2, '', 0.1, 0.0);
INSERT INTO judge_samples (event_id, ts, model, prompt, response, status, attempts)
  VALUES ('e1', 1.5, 'b', '[]', 'hi', 'new', 0);
"""

# Version 3: version 2 and retention's tallies.
V3_SCHEMA = V2_SCHEMA.replace(
    "PRAGMA user_version=2;",
    'CREATE TABLE "pruned_totals" ("name" TEXT PRIMARY KEY, "n" INTEGER NOT NULL);\nPRAGMA user_version=3;',
)

# The first release's schema (user_version 1): no shadow columns, no ttft_ms, four tables.
BEFORE_SHADOW = """
CREATE TABLE "learned" ("seq" INTEGER PRIMARY KEY, "event_id" TEXT NOT NULL, "ts" REAL NOT NULL, "reward" REAL,
  "quality" REAL, "cost_usd" REAL, "latency_ms" REAL, "vw_cost" REAL, "defaulted" TEXT, "cost_weight" REAL,
  "latency_weight" REAL);
CREATE TABLE "checkpoints" ("seq" INTEGER PRIMARY KEY, "ts" REAL, "learned_seq" INTEGER, "vw_args" TEXT,
  "model" BLOB, "sha256" TEXT);
CREATE TABLE "decisions" ("seq" INTEGER PRIMARY KEY, "event_id" TEXT NOT NULL, "ts" REAL NOT NULL,
  "features" TEXT NOT NULL, "models" TEXT NOT NULL, "chosen" INTEGER NOT NULL, "pmf" TEXT NOT NULL,
  "explored" INTEGER, "reason" TEXT, "input_tokens" INTEGER, "tenant" TEXT);
CREATE TABLE "feedback" ("seq" INTEGER PRIMARY KEY, "event_id" TEXT NOT NULL, "ts" REAL NOT NULL, "quality" REAL,
  "latency_ms" REAL, "cost_usd" REAL, "input_tokens" INTEGER, "output_tokens" INTEGER, "source" TEXT, "error" TEXT);
INSERT INTO decisions (event_id, ts, features, models, chosen, pmf, explored, reason, input_tokens, tenant)
  VALUES ('e1', 1.5, '|w hi', '["a","b"]', 1, '[0.25,0.75]', 1, 'why', 3, 't1');
INSERT INTO feedback (event_id, ts, quality, source) VALUES ('e1', 2.0, 0.8, 'user');
"""


def made_by(tmp_path, script: str) -> str:
    path = str(tmp_path / "log.db")
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()
    return path


def test_a_version_2_log_gains_the_pruned_totals_and_keeps_its_rows(tmp_path) -> None:
    store = Store(made_by(tmp_path, V2_SCHEMA))
    assert schema.user_version(store.conn) == schema.SCHEMA_VERSION == 3
    assert store.pruned_totals() == {} and store.counts()["decisions"] == 1
    assert store.prune(before_ts=10.0).decisions == 0  # no checkpoint covers e1: it stays
    store.close()


def test_a_log_at_the_current_version_opens_unchanged(tmp_path, monkeypatch) -> None:
    path = made_by(tmp_path, V3_SCHEMA)
    monkeypatch.setattr(schema, "MIGRATIONS", {})  # nothing to migrate: no step may run
    store = Store(path)
    assert store.decision("e1") == Decision(
        "e1", 1.5, "|w hi", ("a", "b"), 1, (0.25, 0.75), True, "why", 3, "t1", shadow_pmf=(0.5, 0.5), shadow_chosen=0
    )
    assert store.feedback("e1") == [FeedbackPart("e1", 2.0, quality=0.8, source="user", ttft_ms=12.0)]
    assert [r for r, _ in store.learned_after(0)] == [LearnedRow(1, "e1", 2.0, 0.8, 0.8, 0.0, 10.0, 0.2, "", 0.1, 0.0)]
    assert [s.event_id for s in store.due_samples(not_after=2.0, limit=5)] == ["e1"]
    assert store.shadow_counts() == (1, 0)
    store.write(parts=[FeedbackPart("e1", 3.0, latency_ms=4.0)])
    assert store.feedback_count("e1") == 2 and store.integrity_ok()
    store.close()


@pytest.mark.parametrize("version", [0, 1])
def test_an_older_log_gains_the_late_columns_and_the_missing_tables(tmp_path, version: int) -> None:
    path = made_by(tmp_path, BEFORE_SHADOW + f"PRAGMA user_version={version};")  # 0: never versioned
    store = Store(path)
    assert schema.user_version(store.conn) == schema.SCHEMA_VERSION
    assert store.decision("e1") == Decision("e1", 1.5, "|w hi", ("a", "b"), 1, (0.25, 0.75), True, "why", 3, "t1")
    assert store.feedback("e1") == [FeedbackPart("e1", 2.0, quality=0.8, source="user")]
    assert store.counts() == {"decisions": 1, "feedback_parts": 1, "learned": 0, "joins_finished": 0}
    store.write(parts=[FeedbackPart("e1", 3.0, ttft_ms=7.0)])
    assert store.feedback("e1")[-1].ttft_ms == 7.0 and store.judge_spend() == 0.0
    store.close()
    Store(path).close()  # opening it again is a no-op


def test_a_newer_log_is_refused_rather_than_rewritten(tmp_path) -> None:
    path = made_by(tmp_path, f"PRAGMA user_version={schema.SCHEMA_VERSION + 1};")
    with pytest.raises(StoreError, match="newer"):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION + 1
    conn.close()


@pytest.mark.parametrize(
    "record, names",
    [
        (FeedbackPart, schema.FEEDBACK_COLUMNS),
        (LearnedRow, schema.LEARNED_COLUMNS),
        (JudgeSample, schema.SAMPLE_COLUMNS),
    ],
)
def test_records_read_positionally_have_their_tables_columns_in_order(record: type, names: tuple[str, ...]) -> None:
    assert tuple(f.name for f in dataclasses.fields(record)) == names
