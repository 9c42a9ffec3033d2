"""HostService: one host of a fleet over PostgreSQL (`banditroute serve --store postgresql://…`).

It serves like a serving process of `serve --workers N` (serving.py): decides from the newest
snapshot, appends decisions and parts to the shared log, answers `/reward` for events any host
decided, and follows the snapshots, finished joins and operator changes the log holds. Unless it
runs with `--no-learner`, it also keeps a seat in the learner's election (election.py): the host
that holds it joins, learns and publishes for the whole fleet.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Self

from banditroute.config import Config
from banditroute.service.base import Clock, OpenLog
from banditroute.service.election import LearnerSeat
from banditroute.service.serving import ServingService


class HostService(ServingService):
    kind = "host"
    seat: LearnerSeat | None = None

    @classmethod
    def _assemble(cls, config: Config, opened: OpenLog, *, config_path: str | Path | None, clock: Clock) -> Self:
        service = super()._assemble(config, opened, config_path=config_path, clock=clock)
        if config.cluster.learner:
            service.seat = LearnerSeat(config, service.host)
            service.seat.start()
        return service

    @property
    def is_learner(self) -> bool:
        return self.seat is not None and self.seat.is_learner

    async def stop(self) -> None:
        if self.seat is not None:
            seat, self.seat = self.seat, None
            # The last snapshot is published and the lock given up before the log closes.
            await asyncio.get_running_loop().run_in_executor(None, seat.stop)
        await super().stop()
