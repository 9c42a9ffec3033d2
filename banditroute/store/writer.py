"""Batched, ordered, durable appends to the store, off the event loop.

Everything goes through one FIFO queue and one writer thread, so a feedback part is never
committed before the decision it refers to, and a checkpoint never before the learned rows it
includes. Whatever is queued while a batch is written goes into the next one (group commit).
Learned rows are fire-and-forget (a lost one is learned again after restart from the stored
parts); decisions, feedback parts and checkpoints can be awaited: `/route` and `/reward` answer
only once their record is committed.

What "committed" promises is `server.durability`:
- "process" (the default): every batch commits without an fsync (`synchronous=NORMAL`, WAL), so an
  acknowledged record survives the process dying at once; `walsync.WalSyncer` fsyncs the WAL on its
  own thread at most every `fsync_interval_s`, which bounds what a power cut can lose. No commit,
  and so no answer, waits for the disk.
- "power": a batch someone waits on commits with an fsync (its answers wait for it; group commit);
  one nobody waits on, without (see `__init__`).

Bounded: `admit()` refuses new client records (Overloaded, a 503) while `max_queue` records wait
for the writer; the service's own records (learned rows, checkpoints) are never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal

import structlog

from banditroute.store.base import LogStore
from banditroute.store.sqlite import Checkpoint, PartsLimitReached, Store, StoreError
from banditroute.store.walsync import WalSyncer
from banditroute.types import ConfigChange, Decision, FeedbackPart, LearnedRow

log = structlog.get_logger("banditroute.store.writer")

_DECISION, _PART, _LEARNED, _CHECKPOINT, _CHANGE = range(5)
# After a failed batch the writer pauses this long before the next one, so a full or failing disk
# is not retried in a tight loop (the requeued learned rows would make it spin).
RETRY_AFTER_FAILURE_S = 0.5


class Overloaded(StoreError):
    """The write queue is full: the writer is behind (slow or failing disk); retry shortly."""


class EventLog:
    """The router's LogSink for the service; `start()` inside a running loop, `close()` to drain."""

    def __init__(
        self,
        store: LogStore,
        batch_max: int = 1024,
        max_queue: int = 100_000,
        *,
        linger_s: float = 0.0,
        durability: Literal["process", "power"] = "process",
        fsync_interval_s: float = 0.2,
        max_parts_per_event: int | None = None,
    ):
        self.store = store
        # Enforced where a part is committed (Store.write): its awaiter gets PartsLimitReached.
        self.max_parts_per_event = max_parts_per_event
        self.batch_max = batch_max
        self.max_queue = max_queue
        # Records nobody waits for: learned rows. A batch that starts with one is held `linger_s` to
        # gather more (fewer commits, less CPU per record); under "power", a batch of nothing else
        # commits without an fsync and becomes durable with the next awaited commit. On a 2-CPU
        # machine the fsyncs' kernel work stalled the event loop for ~5 ms several times a second.
        self.linger_s = linger_s
        self._unawaited_kinds = {_LEARNED}
        self.durability = durability
        self.syncer: WalSyncer | None = None
        if durability == "process" and isinstance(store, Store):  # PostgreSQL's commit is the server's to sync
            store.without_autocheckpoint()
            self.syncer = WalSyncer(store.path, fsync_interval_s)
        self._queue: asyncio.Queue[tuple[int, Any, asyncio.Future[None] | None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="banditroute-writer")
        self._decision_commits: dict[str, asyncio.Future[None]] = {}
        self.healthy = True
        self.last_error: str | None = None
        self.batches = 0

    def start(self) -> None:
        if self.syncer is not None:
            self.syncer.start()
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="banditroute-eventlog")

    async def close(self) -> None:
        if self._task is not None and self._queue is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)
        if self.syncer is not None:
            self.syncer.close()  # a last fsync: a clean stop leaves nothing a power cut could take

    # LogSink ----------------------------------------------------------------------------------

    def decision(self, decision: Decision) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._decision_commits[decision.event_id] = fut
        self._put(_DECISION, decision, fut)

    def learned(self, row: LearnedRow) -> None:
        self._put(_LEARNED, row, None)

    # Awaited appends ----------------------------------------------------------------------------

    async def decision_committed(self, event_id: str) -> None:
        """Returns once the decision logged for `event_id` is committed."""
        fut = self._decision_commits.pop(event_id, None)
        if fut is not None:
            await fut

    async def feedback(self, part: FeedbackPart) -> None:
        """Returns once the part is committed; raises StoreError when it could not be."""
        fut = asyncio.get_running_loop().create_future()
        self._put(_PART, part, fut)
        await fut

    async def checkpoint(self, checkpoint: Checkpoint) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._put(_CHECKPOINT, checkpoint, fut)
        await fut

    def change(self, change: ConfigChange) -> asyncio.Future[None]:
        """Queue an operator's change (replayed at the next start); the future completes once committed."""
        fut = asyncio.get_running_loop().create_future()
        self._put(_CHANGE, change, fut)
        return fut

    async def call(self, fn: Any, *args: Any) -> Any:
        """Run a read on the writer thread (the store is used from one thread at a time)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def admit(self) -> None:
        """Raises Overloaded when no new client record may be queued now."""
        if self.pending() >= self.max_queue:
            raise Overloaded(f"the write queue holds {self.pending()} records, its limit")

    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def _put(self, kind: int, item: Any, fut: asyncio.Future[None] | None) -> None:
        assert self._queue is not None, "EventLog.start() was not called"
        self._queue.put_nowait((kind, item, fut))

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            if self.linger_s > 0 and batch[0][0] in self._unawaited_kinds:
                await asyncio.sleep(self.linger_s)
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(loop, batch)
            for _ in batch:
                self._queue.task_done()

    async def _write(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[int, Any, Any]]) -> None:
        decisions = [item for kind, item, _ in batch if kind == _DECISION]
        parts = [item for kind, item, _ in batch if kind == _PART]
        learned = [item for kind, item, _ in batch if kind == _LEARNED]
        checkpoints = [item for kind, item, _ in batch if kind == _CHECKPOINT]
        changes = [item for kind, item, _ in batch if kind == _CHANGE]
        error: Exception | None = None
        refused: set[int] = set()
        durable = self.syncer is None and any(kind not in self._unawaited_kinds for kind, _, _ in batch)
        try:
            refused = await loop.run_in_executor(
                self._executor,
                partial(
                    self._commit,
                    decisions,
                    parts,
                    learned,
                    checkpoints[-1] if checkpoints else None,
                    changes,
                    durable=durable,
                    max_parts_per_event=self.max_parts_per_event,
                ),
            )
            self.batches += 1
            if not self.healthy:
                log.info("store_recovered")
            self.healthy, self.last_error = True, None
        except StoreError as exc:
            error = exc
            self.healthy, self.last_error = False, str(exc)
            log.error("store_write_failed", error=str(exc), decisions=len(decisions), parts=len(parts))
            # Learned rows are queued again (they are the service's own records); every awaited
            # record is failed, so its client gets a 503 and retries.
            self._requeue([(k, i, None) for k, i, _ in batch if k == _LEARNED])
            await asyncio.sleep(RETRY_AFTER_FAILURE_S)
        part_index = 0
        for kind, item, fut in batch:
            outcome = error
            if kind == _DECISION:
                self._decision_commits.pop(item.event_id, None)
            elif kind == _PART:
                if part_index in refused:
                    outcome = PartsLimitReached(item.event_id)
                part_index += 1
            if fut is not None and not fut.done():
                if outcome is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(outcome)

    def _commit(self, *records: Any, durable: bool, max_parts_per_event: int | None) -> set[int]:
        """On the writer thread: one batch, then (under "process") the syncer learns it has work."""
        refused = self.store.write(*records, durable=durable, max_parts_per_event=max_parts_per_event)
        if self.syncer is not None:
            self.syncer.committed()
        return refused

    def _requeue(self, items: list[tuple[int, Any, None]]) -> None:
        assert self._queue is not None
        for item in items:
            self._queue.put_nowait(item)
