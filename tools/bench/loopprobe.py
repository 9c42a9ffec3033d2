"""The event-loop callback probe: `banditroute serve` with every loop callback timed.

    python -m tools.bench.loopprobe OUT.json serve --port 8080 ...
    kill -USR1 PID; (the load); kill -USR2 PID; kill -TERM PID

Counts only between SIGUSR1 and SIGUSR2 (the measured load, not the start-up or the shutdown).
Wraps asyncio's `Handle._run` (every callback the loop runs: a request's steps, a writer batch's
completion, a timer) and the two places that fsync the log: a durable commit (`Store.write` with
`durable=True`, under `server.durability = "power"`) and the WAL syncer's sync (under "process").
At exit it writes to OUT.json how many callbacks ran, how many took over 1 and 2 ms, how many of
those overlapped an fsync (an fsync ran on another thread while the callback ran: the kernel's work
for it shares the CPU), the longest, the fsyncs' count and longest duration, and (under "process")
the WAL syncer's figures over the server's life: the longest time a commit waited for the fsync
that covered it (`max_window_ms`, the power-loss window achieved) and the longest sync. A slow callback
that overlaps no fsync has another cause (the GC, a policy reload, the machine). The wrappers cost
about a microsecond per callback, so compare a probed run only with a probed run.
"""

from __future__ import annotations

import asyncio.events
import atexit
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from banditroute import cli
from banditroute.store import walsync
from banditroute.store.sqlite import Store

SLOW_MS = (1.0, 2.0)


class Probe:
    def __init__(self) -> None:
        self.callbacks = 0
        self.slow: list[tuple[float, float, str]] = []  # (start, end, callback) of those over SLOW_MS[0]
        self.fsyncs: list[tuple[float, float]] = []  # (start, end), appended from the writer threads
        self._lock = threading.Lock()
        self.armed = False
        self.syncers: list[walsync.WalSyncer] = []  # under "process": the power-loss window achieved

    def arm(self, *_: Any) -> None:
        self.callbacks, self.slow, self.armed = 0, [], True
        with self._lock:
            self.fsyncs = []

    def disarm(self, *_: Any) -> None:
        self.armed = False

    def install(self) -> None:
        probe, clock = self, time.perf_counter
        run_callback = asyncio.events.Handle._run
        threshold_s = SLOW_MS[0] / 1000

        def timed_run(handle: asyncio.events.Handle) -> None:
            if not probe.armed:
                return run_callback(handle)
            t0 = clock()
            run_callback(handle)
            t1 = clock()
            probe.callbacks += 1
            if t1 - t0 > threshold_s:
                probe.slow.append((t0, t1, repr(handle)[:160]))

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]

        write = Store.write

        def timed_write(store: Store, *args: Any, durable: bool = True, **kwargs: Any) -> set[int]:
            if not durable:
                return write(store, *args, durable=False, **kwargs)
            t0 = clock()
            try:
                return write(store, *args, durable=True, **kwargs)
            finally:
                probe._fsynced(t0, clock())

        Store.write = timed_write  # type: ignore[method-assign,assignment]

        sync = walsync.WalSyncer._sync_pending

        def timed_sync(syncer: walsync.WalSyncer) -> None:
            t0 = clock()
            try:
                sync(syncer)
            finally:
                probe._fsynced(t0, clock())

        walsync.WalSyncer._sync_pending = timed_sync  # type: ignore[method-assign,assignment]

        init = walsync.WalSyncer.__init__

        def registered_init(syncer: walsync.WalSyncer, *args: Any, **kwargs: Any) -> None:
            init(syncer, *args, **kwargs)
            probe.syncers.append(syncer)

        walsync.WalSyncer.__init__ = registered_init  # type: ignore[method-assign,assignment]

    def _fsynced(self, start: float, end: float) -> None:
        if not self.armed:
            return
        with self._lock:
            self.fsyncs.append((start, end))

    def report(self) -> dict[str, Any]:
        with self._lock:
            fsyncs = sorted(self.fsyncs)
        out: dict[str, Any] = {"callbacks": self.callbacks, "fsyncs": len(fsyncs)}
        out["fsync_max_ms"] = round(max((e - s for s, e in fsyncs), default=0.0) * 1000, 3)
        for ms in SLOW_MS:
            slow = [(s, e) for s, e, _ in self.slow if e - s > ms / 1000]
            out[f"over_{ms:g}ms"] = len(slow)
            out[f"over_{ms:g}ms_during_fsync"] = sum(1 for s, e in slow if _overlaps(s, e, fsyncs))
        out["max_ms"] = round(max((e - s for s, e, _ in self.slow), default=0.0) * 1000, 3)
        out["max_ms_during_fsync"] = round(
            max((e - s for s, e, _ in self.slow if _overlaps(s, e, fsyncs)), default=0.0) * 1000, 3
        )
        out["wal_sync"] = [
            {
                "interval_ms": round(w.interval_s * 1000, 1),
                "syncs": w.syncs,
                "failures": w.failures,
                "max_window_ms": round(w.max_window_s * 1000, 1),
                "max_sync_ms": round(w.max_sync_s * 1000, 1),
            }
            for w in self.syncers
        ]
        out["slowest"] = [
            {"ms": round((e - s) * 1000, 3), "callback": what}
            for s, e, what in sorted(self.slow, key=lambda x: x[0] - x[1])[:5]
        ]
        return out


def _overlaps(start: float, end: float, intervals: list[tuple[float, float]]) -> bool:
    return any(s < end and e > start for s, e in intervals)


def main(argv: list[str]) -> int:
    out, serve_args = Path(argv[0]), argv[1:]
    probe = Probe()
    probe.install()
    signal.signal(signal.SIGUSR1, probe.arm)
    signal.signal(signal.SIGUSR2, probe.disarm)
    atexit.register(lambda: out.write_text(json.dumps(probe.report(), indent=2) + "\n"))
    return cli.main(serve_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
