"""The learner's seat: on a fleet over PostgreSQL, exactly one host at a time joins, learns and publishes.

Every host that may learn (`cluster.learner`, not `--no-learner`) keeps a `LearnerSeat`: a thread
that opens its own database session and tries, every `cluster.failover_s / 4`, to take the
learner's advisory lock (`PostgresStore.try_lead`, which never waits). The host that gets it builds
a `Learner` on that same session (recovery: the newest checkpoint, the learned rows after it again,
the pending decisions with their parts) and steps it until it stops or the session fails.

Why this is safe. The lock lives as long as the session, and the learner reads and writes only on
that session, which never reconnects: when the host dies, or its network or the database fails, the
session ends, the lock is free, and nothing the old learner still tries to write can commit. The next
learner starts from what is committed: a learned row is in the log exactly once (its event id is
unique) and every join not in it is waited for again, so nothing is learned twice or lost. The
database notices a dead session at once when the host's process dies (the kernel closes its socket)
and within `failover_s` when the host goes silent (the keepalives `PostgresStore` sets).

The learner shares its host's process with serving (one thread more; VW learning holds the GIL while
it runs); a host that must keep its CPU for requests runs `--no-learner`.
"""

from __future__ import annotations

import threading

import structlog

from banditroute.config import Config
from banditroute.service.learner import Learner
from banditroute.store.errors import StoreError
from banditroute.store.postgres import PostgresStore

log = structlog.get_logger("banditroute.service.election")

# Of `cluster.failover_s`: how often a candidate tries for the lock, and how soon the database must
# notice a silent learner's session is gone (the rest is the new learner's recovery).
TRY_SHARE = 0.25
LIVENESS_SHARE = 0.6


class LearnerSeat:
    """Runs for the learner's lock in a thread; `is_learner` says whether this host holds it now."""

    def __init__(self, config: Config, host: str):
        self.config = config
        self.host = host
        self.try_every_s = config.cluster.failover_s * TRY_SHARE
        self.is_learner = False
        self.learner: Learner | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="banditroute-learner-seat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop learning (publishing a last snapshot) and give the seat up for another host."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                store = PostgresStore(
                    self.config.store.url,
                    reconnect=False,
                    liveness_s=self.config.cluster.failover_s * LIVENESS_SHARE,
                    application_name=self.host,
                )
            except StoreError as exc:
                log.warning("learner_seat_unreachable", error=str(exc))
                self._stop.wait(self.try_every_s)
                continue
            try:
                self._hold(store)
            finally:
                self.is_learner, self.learner = False, None
                store.close()  # ends the session: the lock is free at once
            self._stop.wait(self.try_every_s)

    def _hold(self, store: PostgresStore) -> None:
        """Try for the lock until stopped; once held, learn until stopped or the session fails."""
        try:
            while not store.try_lead():
                if self._stop.wait(self.try_every_s):
                    return
            learner = Learner(self.config, store=store)
        except StoreError as exc:
            log.warning("learner_seat_lost", error=str(exc))
            return
        self.learner, self.is_learner = learner, True
        log.info("learner_elected", host=self.host, learned_seq=learner.router.learned_seq)
        try:
            while not self._stop.is_set():
                learner.step()
                self._stop.wait(learner.poll_s)
            learner.publish()
        except StoreError as exc:
            # The session (and with it the lock) may be gone: what this learner did not commit is
            # learned again by whoever holds the lock next, from the log.
            log.error("learner_stepped_down", host=self.host, error=str(exc))
