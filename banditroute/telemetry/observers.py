"""Observers: the router's events (decisions, finished joins, cooldowns) fanned out to the telemetry.

Built before the router that reports to it, so a service can be assembled complete: the router
gets its observer at construction, and the service reads the same metrics, time series and shadow
tracker for /metrics, /dashboard and /admin/shadow.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from banditroute.config import Config
from banditroute.telemetry.metrics import Metrics
from banditroute.telemetry.per_model import ModelOutcomes
from banditroute.telemetry.shadow import ShadowTracker
from banditroute.telemetry.timeseries import TimeSeries
from banditroute.types import Decision, LearnedRow

log = structlog.get_logger("banditroute")


class Observers:
    """The router's Observer: Prometheus metrics, the dashboard's time series and per-model outcomes, the
    shadow estimate."""

    def __init__(self, config: Config):
        self.metrics = Metrics(m.name for m in config.models)
        d = config.dashboard
        self.timeseries = TimeSeries(d.interval_s, d.history, d.recent_decisions)
        self.shadow = ShadowTracker()
        self.outcomes = ModelOutcomes()

    def decided(self, decision: Decision, excluded: Mapping[str, str]) -> None:
        self.metrics.decided(decision, excluded)
        self.timeseries.decided(decision, excluded)
        if decision.shadow_chosen is not None:
            self.shadow.decided(decision.shadow_chosen == decision.chosen)

    def cooldown_started(self, model: str) -> None:
        self.metrics.cooldown_started(model)
        log.warning("cooldown_started", model=model)

    def learned(self, decision: Decision, row: LearnedRow) -> None:
        self.metrics.learned(decision, row)
        self.timeseries.learned(decision, row)
        self.outcomes.learned(decision.model, row)
        if decision.shadow_pmf is not None and row.reward is not None:
            self.shadow.learned(row.reward, decision.shadow_pmf[decision.chosen])
