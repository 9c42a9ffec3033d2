"""One learner per log, by a lock (issue 15, defect 6): a second one, of either kind, is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.service.learner import Learner
from banditroute.service.single import LearningService
from banditroute.store.datadir import LearnerRunning
from tests.conftest import make_config


async def test_a_second_learner_on_one_log_is_refused_until_the_first_stops(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    first = Learner(config)
    try:
        with pytest.raises(LearnerRunning, match=f"pid {__import__('os').getpid()}"):
            Learner(config)
        with pytest.raises(LearnerRunning, match="already learns from the log"):
            await LearningService.open(config)
    finally:
        first.close()
    service = await LearningService.open(config)  # released at stop: the next one may start
    try:
        with pytest.raises(LearnerRunning):
            Learner(config, lock_wait_s=0.2)
    finally:
        await service.stop()
    Learner(config).close()
