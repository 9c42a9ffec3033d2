"""The WAL's fsync at most every `interval_s`, on a thread and connection of its own (`durability = "process"`).

Under "process" the writer commits with `synchronous=NORMAL` and no automatic checkpoint: a committed
transaction is in the WAL file, in the kernel's page cache, so it survives the process dying at
once, and a power cut or kernel crash once the WAL is fsynced. This thread does that fsync, then a
PASSIVE checkpoint (which copies the WAL into the database, fsyncs it, and so lets the writer start
the WAL over instead of growing it). A commit thus never waits for a disk flush, and the event
loop never runs one; a power cut loses at most what was committed in the last `interval_s` plus one
sync's duration, which `max_window_s` measures.

The checkpoint runs on its own connection, used only by this thread: SQLite serializes it against
the writer's connection itself, and a PASSIVE checkpoint never waits for a lock. The WAL fsync does
not depend on the checkpoint's progress (a reader's old snapshot can hold a checkpoint back), so
every commit made before a sync starts is durable when it ends.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import structlog

from banditroute.store.errors import StoreError

log = structlog.get_logger("banditroute.store.walsync")


class WalSyncer:
    """`committed()` after each commit (any thread); `start()`, then `close()` syncs a last time."""

    def __init__(self, db_path: str | Path, interval_s: float):
        self.db_path = Path(db_path)
        self.wal_path = self.db_path.with_name(self.db_path.name + "-wal")
        self.interval_s = interval_s
        self._clock = time.monotonic
        try:
            self._conn = sqlite3.connect(str(self.db_path), isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA synchronous=NORMAL")  # a checkpoint fsyncs the database only above OFF
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the event log at {self.db_path} for syncing: {exc}") from exc
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._oldest_unsynced: float | None = None  # when the first commit since the last sync finished
        self._thread = threading.Thread(target=self._run, name="banditroute-walsync", daemon=True)
        self.syncs = 0
        self.failures = 0
        self.last_error: str | None = None
        # The longest a commit stayed in the page cache only: from its commit to the end of the
        # fsync that covered it (the power-loss window actually achieved), and the longest sync.
        self.max_window_s = 0.0
        self.max_sync_s = 0.0

    def start(self) -> None:
        self._thread.start()

    def committed(self) -> None:
        """A transaction was committed (not yet fsynced)."""
        with self._lock:
            if self._oldest_unsynced is None:
                self._oldest_unsynced = self._clock()
        self._dirty.set()

    def close(self) -> None:
        """Stop the thread, sync whatever was committed since its last sync, close the connection."""
        self._stop.set()
        self._dirty.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sync_pending()  # the thread is gone: this thread may use the connection now
        self._conn.close()

    def _run(self) -> None:
        last_start = float("-inf")
        while not self._stop.is_set():
            self._dirty.wait()
            # At most one sync per interval: commits made meanwhile share the next one.
            delay = last_start + self.interval_s - self._clock()
            if delay > 0 and self._stop.wait(delay):
                return
            last_start = self._clock()
            self._sync_pending()

    def _sync_pending(self) -> None:
        with self._lock:
            oldest, self._oldest_unsynced = self._oldest_unsynced, None
            self._dirty.clear()
        if oldest is None:
            return
        started = self._clock()
        try:
            self._fsync_wal()
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except (OSError, sqlite3.Error) as exc:
            # Nothing acknowledged is lost while the process lives (the commits are in the page
            # cache); only the power-loss bound is not kept. Retried at the next interval.
            self.failures += 1
            self.last_error = str(exc)
            log.error("wal_sync_failed", error=str(exc), path=str(self.wal_path))
            with self._lock:
                self._oldest_unsynced = oldest  # still unsynced, and earlier than any commit since
            self._dirty.set()
            return
        ended = self._clock()
        self.syncs += 1
        self.last_error = None
        self.max_window_s = max(self.max_window_s, ended - oldest)
        self.max_sync_s = max(self.max_sync_s, ended - started)

    def _fsync_wal(self) -> None:
        # Opened per sync: SQLite may delete and recreate the WAL file (when its last connection
        # closes), and an fsync must reach the file the writer appends to now.
        try:
            fd = os.open(self.wal_path, os.O_RDONLY)
        except FileNotFoundError:
            return  # no WAL: every commit is already in the (synced) database file
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
