"""Who may learn from a log: on SQLite the data directory's file lock (`LearnerLock`) elects the one
learner; on PostgreSQL the database's lock does (`try_lead`, held by a host's `LearnerSeat`), so the
per-host file lock neither blocks nor replaces it."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.config import load_config
from banditroute.service.learner import Learner
from banditroute.store.datadir import LearnerLock, LearnerRunning
from banditroute.store.postgres import PostgresStore


def test_on_sqlite_the_data_directorys_lock_elects_the_learner(tmp_path: Path) -> None:
    config = load_config().with_overrides(server={"data_dir": str(tmp_path)})
    first = Learner(config)
    try:
        with pytest.raises(LearnerRunning):
            Learner(config)
    finally:
        first.close()
    Learner(config).close()  # released with the first: the next one starts


def test_on_postgresql_the_database_lock_elects_and_the_file_lock_is_not_taken(pg_url: str, tmp_path: Path) -> None:
    config = load_config().with_overrides(store={"url": pg_url}, server={"data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="LearnerSeat"):
        Learner(config)  # no store: it would learn without holding the database's lock
    # `serve --store URL --workers N`: the processes of one host share its data directory. Another
    # process holding the file lock there must not keep the elected one from learning ...
    held = LearnerLock.acquire(tmp_path)
    seat = PostgresStore(pg_url, reconnect=False)
    try:
        assert seat.try_lead()
        learner = Learner(config, store=seat)
        learner.step()
        # ... and the elected learner takes no file lock that would stall a SQLite learner or a seat.
        held.release()
        LearnerLock.acquire(tmp_path).release()
    finally:
        held.release()
        seat.close()
