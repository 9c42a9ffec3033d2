"""The WAL syncer of `server.durability = "process"`: commits without an fsync, synced on its own thread.

What survives a power cut cannot be tested here; what can: the syncer brings every commit into the
database file (its checkpoint; a copy of the database file alone, without the WAL, holds the rows),
at most once per interval, a last time at close, and the writer's connection never checkpoints in a
commit.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from banditroute.store.sqlite import Store
from banditroute.store.walsync import WalSyncer
from tests.unit.test_store import decision


def _rows_in_database_file_alone(db: Path, tmp: Path) -> int:
    """The decisions a copy of the database file holds without its WAL: what a checkpoint wrote there."""
    copy = tmp / "copy" / db.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(db, copy)
    conn = sqlite3.connect(copy)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'decisions'").fetchone() is None:
            return 0  # the schema itself is still only in the WAL
        return conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    finally:
        conn.close()


def _until(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _writer(tmp_path: Path) -> Store:
    store = Store(tmp_path / "log.db")
    store.without_autocheckpoint()
    return store


def test_commits_reach_the_database_file_after_a_sync(tmp_path: Path) -> None:
    store = _writer(tmp_path)
    syncer = WalSyncer(store.path, interval_s=0.05)
    syncer.start()
    try:
        for i in range(20):
            store.write([decision(f"e{i}")], durable=False)
            syncer.committed()
        assert _until(lambda: _rows_in_database_file_alone(store.path, tmp_path) == 20)
        assert syncer.syncs >= 1 and syncer.failures == 0
        assert 0 < syncer.max_window_s < 5.0 and syncer.max_sync_s <= syncer.max_window_s
    finally:
        syncer.close()
        store.close()


def test_the_writer_never_checkpoints_inside_a_commit(tmp_path: Path) -> None:
    store = _writer(tmp_path)
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for i in range(50):
        store.write([decision(f"e{i}")], durable=False)
    assert _rows_in_database_file_alone(store.path, tmp_path) == 0  # all of it still only in the WAL
    store.close()


def test_at_most_one_sync_per_interval(tmp_path: Path) -> None:
    store = _writer(tmp_path)
    syncer = WalSyncer(store.path, interval_s=0.2)
    syncer.start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < 0.7:
            store.write([decision(f"e{time.monotonic_ns()}")], durable=False)
            syncer.committed()
            time.sleep(0.005)
    finally:
        elapsed = time.monotonic() - started
        syncs = syncer.syncs
        syncer.close()
        store.close()
    assert 2 <= syncs <= elapsed / 0.2 + 1


def test_close_syncs_what_was_committed_since_the_last_sync(tmp_path: Path) -> None:
    store = _writer(tmp_path)
    syncer = WalSyncer(store.path, interval_s=60.0)
    syncer.start()
    store.write([decision("first")], durable=False)
    syncer.committed()
    assert _until(lambda: syncer.syncs == 1)  # the first sync is due at once
    store.write([decision("second")], durable=False)
    syncer.committed()  # the next one only in a minute
    time.sleep(0.05)
    assert _rows_in_database_file_alone(store.path, tmp_path) == 1
    syncer.close()
    assert syncer.syncs == 2
    assert _rows_in_database_file_alone(store.path, tmp_path) == 2
    store.close()


def test_nothing_committed_nothing_synced(tmp_path: Path) -> None:
    store = _writer(tmp_path)
    syncer = WalSyncer(store.path, interval_s=0.01)
    syncer.start()
    time.sleep(0.1)
    syncer.close()
    store.close()
    assert syncer.syncs == 0
