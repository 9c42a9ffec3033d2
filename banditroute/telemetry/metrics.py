"""Prometheus metrics of one service: what the router decides, learns and waits for.

Each Service owns its registry (not the process-global one), so several services in one process
(tests, benchmarks) keep separate counts. Exposed at `GET /metrics` in the text format.

Naming follows Prometheus conventions: counters end in `_total`, times are in seconds, and every
per-model series is created up front for each catalog model, so a dashboard sees zeros, not gaps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from banditroute.budget import COST, QUALITY, Controller
from banditroute.types import Decision, LearnedRow

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Bucket edges. Quality lives in [0, 1]; cost in USD per request spans cheap small models to long calls to the
# largest ones; latency and the learner's lag span sub-second answers to the default 600 s feedback window.
QUALITY_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
COST_BUCKETS = (1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 1.0)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
LAG_BUCKETS = (0.01, 0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)
ROUTE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self, models: Iterable[str]):
        r = self.registry = CollectorRegistry(auto_describe=True)
        by_model = ["model"]
        self.decisions = Counter(
            "banditroute_decisions", "Routing decisions, by the model served", by_model, registry=r
        )
        self.explored = Counter(
            "banditroute_explored_decisions", "Decisions whose draw was not the most likely model", by_model, registry=r
        )
        self.exploration_share = Gauge(
            "banditroute_exploration_share", "Share of decisions since start that explored", registry=r
        )
        self.rewards = Counter(
            "banditroute_rewards_learned", "Finished joins the policy learned from, by model", by_model, registry=r
        )
        # A summary, not a histogram: rewards go below 0 when cost counts, and the client drops the
        # `_sum` of histograms with negative buckets; `_sum / _count` is the mean reward.
        self.reward = Summary("banditroute_reward", "Learned reward per event, by model", by_model, registry=r)
        self.quality = Histogram(
            "banditroute_quality",
            "Quality used in the learned reward, by model",
            by_model,
            buckets=QUALITY_BUCKETS,
            registry=r,
        )
        self.cost = Histogram(
            "banditroute_cost_usd",
            "Cost in USD used in the learned reward, by model",
            by_model,
            buckets=COST_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "banditroute_latency_seconds",
            "Latency used in the learned reward, by model",
            by_model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.feedback_parts = Counter(
            "banditroute_feedback_parts", "Feedback parts stored, by source", ["source"], registry=r
        )
        self.defaults = Counter(
            "banditroute_defaults_applied",
            "Learned joins where a part was filled in by default, by part",
            ["part"],
            registry=r,
        )
        self.skipped = Counter(
            "banditroute_skipped_joins",
            "Joins finished without quality and not learned (default_quality = skip)",
            registry=r,
        )
        self.late = Counter(
            "banditroute_late_feedback_parts",
            "Feedback parts for events already learned or expired (stored, not learned)",
            registry=r,
        )
        self.expired = Counter(
            "banditroute_expired_joins", "Joins finished at the end of their wait window", registry=r
        )
        self.pending = Gauge("banditroute_pending_joins", "Decisions waiting for feedback", registry=r)
        self.write_queue = Gauge("banditroute_write_queue", "Records waiting to be committed to the log", registry=r)
        self.learner_lag = Histogram(
            "banditroute_learner_lag_seconds",
            "Time from a decision to learning from it",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.route_seconds = Histogram(
            "banditroute_route_seconds",
            "Time to answer /route: decide and commit the decision",
            buckets=ROUTE_BUCKETS,
            registry=r,
        )
        self.rule_exclusions = Counter(
            "banditroute_rule_exclusions", "Models excluded from a request by a rule, by rule", ["rule"], registry=r
        )
        self.no_model_allowed = Counter(
            "banditroute_no_model_allowed",
            "Requests refused because the rules left no model, by rule",
            ["rule"],
            registry=r,
        )
        self.cooldowns = Counter(
            "banditroute_cooldowns", "Times a model was put in cooldown, by model", by_model, registry=r
        )
        self.in_cooldown = Gauge("banditroute_models_in_cooldown", "Models in cooldown now (not routed to)", registry=r)
        self.cost_weight = Gauge("banditroute_cost_weight", "The reward's cost_weight in force", registry=r)
        self.latency_weight = Gauge("banditroute_latency_weight", "The reward's latency_weight in force", registry=r)
        self.target_cost = Gauge(
            "banditroute_target_cost_per_1k_usd", "The budget held (reward.target_cost_per_1k), USD", registry=r
        )
        self.target_quality = Gauge(
            "banditroute_target_quality", "The mean quality held (reward.target_quality)", registry=r
        )
        self.measured_cost = Gauge(
            "banditroute_target_measured_cost_per_1k_usd",
            "The target controller's window: spend per 1,000 requests (estimated, calibrated by the bills), USD",
            registry=r,
        )
        self.measured_quality = Gauge(
            "banditroute_target_measured_quality", "The target controller's window: mean measured quality", registry=r
        )
        self.exploration_paused = Gauge("banditroute_exploration_paused", "1 while exploration is paused", registry=r)
        self.shadow_mode = Gauge(
            "banditroute_shadow_mode", "1 while a baseline is served and the bandit shadowed", registry=r
        )
        for model in models:
            self.add_model(model)
        for part in ("quality", "cost", "latency"):
            self.defaults.labels(part)
        self._decided = 0
        self._explored = 0
        self.exploration_share.set_function(lambda: self._explored / self._decided if self._decided else 0.0)

    def add_model(self, model: str) -> None:
        for family in (
            self.decisions,
            self.explored,
            self.rewards,
            self.reward,
            self.quality,
            self.cost,
            self.latency,
            self.cooldowns,
        ):
            family.labels(model)

    def watch(
        self, *, pending: Callable[[], float], write_queue: Callable[[], float], in_cooldown: Callable[[], float]
    ) -> None:
        """Gauges read at scrape time from the live service."""
        self.pending.set_function(pending)
        self.write_queue.set_function(write_queue)
        self.in_cooldown.set_function(in_cooldown)

    def watch_target(self, target: Callable[[], Controller | None], cost_weight: Callable[[], float]) -> None:
        """The reward target's controller (docs/budget.md), read at scrape time; NaN: no target, or nothing
        measured yet. The weight it sets moves with every decision, so the cost_weight gauge reads it live."""

        def held(kind: str) -> Callable[[], float]:
            def value() -> float:
                c = target()
                return c.target.value if c is not None and c.target.kind == kind else math.nan

            return value

        def measured(read: Callable[[Controller], float | None]) -> Callable[[], float]:
            def value() -> float:
                c = target()
                v = read(c) if c is not None else None
                return v if v is not None else math.nan

            return value

        self.target_cost.set_function(held(COST))
        self.target_quality.set_function(held(QUALITY))
        self.measured_cost.set_function(measured(Controller.measured_cost_per_1k))
        self.measured_quality.set_function(measured(Controller.measured_quality))
        self.cost_weight.set_function(cost_weight)

    def identify(self, host: str, is_learner: Callable[[], bool]) -> None:
        """`banditroute_learner{host}`: which host answers, and whether it is the learner (read at scrape time)."""
        learner = Gauge(
            "banditroute_learner",
            "1 while this process is the learner (joins, learns, publishes snapshots); the label names the host",
            ["host"],
            registry=self.registry,
        )
        learner.labels(host).set_function(lambda: float(is_learner()))

    # Observer ---------------------------------------------------------------------------------

    def decided(self, decision: Decision, excluded: Mapping[str, str]) -> None:
        model = decision.model
        self.decisions.labels(model).inc()
        self._decided += 1
        if decision.explored:
            self.explored.labels(model).inc()
            self._explored += 1
        for rule in excluded.values():
            self.rule_exclusions.labels(rule).inc()

    def learned(self, decision: Decision, row: LearnedRow) -> None:
        if row.reward is None or row.quality is None:
            self.skipped.inc()
            return
        model = decision.model
        self.rewards.labels(model).inc()
        self.reward.labels(model).observe(row.reward)
        self.quality.labels(model).observe(row.quality)
        if row.cost_usd is not None:
            self.cost.labels(model).observe(row.cost_usd)
        if row.latency_ms is not None:
            self.latency.labels(model).observe(row.latency_ms / 1000.0)
        for part in filter(None, row.defaulted.split(",")):
            self.defaults.labels(part).inc()
        self.learner_lag.observe(max(0.0, row.ts - decision.ts))

    # Other events -----------------------------------------------------------------------------

    def refused(self, rule: str, excluded: Mapping[str, str]) -> None:
        self.no_model_allowed.labels(rule).inc()
        for excluded_by in excluded.values():
            self.rule_exclusions.labels(excluded_by).inc()

    def feedback(self, source: str, late: bool) -> None:
        self.feedback_parts.labels(source).inc()
        if late:
            self.late.inc()

    def cooldown_started(self, model: str) -> None:
        self.cooldowns.labels(model).inc()

    def settings(self, cost_weight: float, latency_weight: float, paused: bool, shadow: bool) -> None:
        self.cost_weight.set(cost_weight)
        self.latency_weight.set(latency_weight)
        self.exploration_paused.set(int(paused))
        self.shadow_mode.set(int(shadow))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
