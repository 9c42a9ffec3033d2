"""Drive a Router through a World, in process, with simulated (late, partial, noisy) feedback.

The router is the same `Router` the service runs; only the clock and the feedback are simulated.
`simulate` is a generator of plain dicts, one per step, so a caller decides where results go;
`summarize` turns them into the metrics the README and the sweep report.

FeedbackModel realism (`FeedbackModel`): the system part (latency, tokens, cost, error) arrives when the
call ends; the quality arrives after an exponential delay, from a judge (true quality + Gaussian
noise, clipped) or, on a fraction of events, as a user's sparse thumbs (1 when the true quality is
at least 0.5, else 0); on a fraction of events no quality ever comes and the default rule applies.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from banditroute import reward as reward_formula
from banditroute.config import Config, RulesConfig
from banditroute.router import Router
from banditroute.rules import NoModelAllowed
from banditroute.types import FeedbackPart, ModelSpec, RewardWeights
from simulators.worlds import World


@dataclass(frozen=True, slots=True)
class FeedbackModel:
    interarrival_s: float = 1.0  # simulated time between requests
    quality_delay_s: float = 0.0  # mean of the exponential delay of the quality part
    missing_quality: float = 0.0  # share of events that never get a quality
    judge_noise: float = 0.0  # standard deviation of the judge's error
    thumbs_fraction: float = 0.0  # share of events whose quality is a user's thumbs (0/1)


def simulate(
    router: Router,
    world: World,
    feedback: FeedbackModel = FeedbackModel(),
    *,
    seed: int = 0,
    start: int = 0,
    stop: int | None = None,
    freeze_at: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Route every request of `world` in order; yields one dict per step.

    `freeze_at`: from that step on the router still routes but learns nothing: no feedback part of a
    decision made there is delivered and the decision is forgotten, so it never expires into a
    default-valued update either (decisions made before it are learned as usual, even late).
    """
    rng = np.random.default_rng(seed)
    due: list[tuple[float, int, FeedbackPart]] = []  # (time, tie-break, part)
    counter = 0
    catalog = None
    stop = len(world) if stop is None else stop
    for step in range(start, stop):
        now = step * feedback.interarrival_s
        while due and due[0][0] <= now:
            t, _, part = heapq.heappop(due)
            router.feedback(part, t)
        router.expire(now)
        specs = world.models(step)
        if specs is not catalog:
            if catalog is not None:
                router.reload_catalog(specs)
            catalog = specs
        req = world.request(step)
        cost_weight = router.config.reward.cost_weight  # the weight this decision is made under
        try:
            decision = router.route(req.query, req.metadata, now=now, event_id=f"s{seed}-{step}")
        except NoModelAllowed:
            yield {"step": step, "model": None}
            continue
        truth = world.outcome(step, decision.model)
        ended = now + truth.latency_ms / 1000.0
        frozen = freeze_at is not None and step >= freeze_at
        if frozen:
            router.forget(decision)
        system = FeedbackPart(
            decision.event_id,
            ended,
            latency_ms=truth.latency_ms,
            cost_usd=truth.cost_usd,
            input_tokens=truth.input_tokens,
            output_tokens=truth.output_tokens,
            source="system",
            error=truth.error,
        )
        counter += 1
        if not frozen:
            heapq.heappush(due, (ended, counter, system))
        if truth.error is None and rng.random() >= feedback.missing_quality:
            if rng.random() < feedback.thumbs_fraction:
                quality, source = (1.0 if truth.quality >= 0.5 else 0.0), "user"
            else:
                noisy = truth.quality + (rng.normal(0.0, feedback.judge_noise) if feedback.judge_noise else 0.0)
                quality, source = min(1.0, max(0.0, noisy)), "judge"
            at = ended + (rng.exponential(feedback.quality_delay_s) if feedback.quality_delay_s else 0.0)
            counter += 1
            if not frozen:
                heapq.heappush(due, (at, counter, FeedbackPart(decision.event_id, at, quality=quality, source=source)))
        yield {
            "step": step,
            "model": decision.model,
            "probability": decision.probability,
            "explored": decision.explored,
            "quality": truth.quality,
            "cost_usd": truth.cost_usd,
            "latency_ms": truth.latency_ms,
            "error": truth.error,
            "task": req.task,
            "cost_weight": cost_weight,
        }
    end = stop * feedback.interarrival_s
    while due:
        t, _, part = heapq.heappop(due)
        router.feedback(part, max(t, end))
    router.expire(float("inf"))  # what never got its parts is learned with the defaults


def new_router(world: World, config: Config, **kwargs: Any) -> Router:
    """A Router whose catalog is the world's at step 0, with the given configuration otherwise."""
    specs = world.models(0)
    return Router(replace(config, models=specs, rules=world_rules(config.rules, specs)), **kwargs)


def world_rules(rules: RulesConfig, specs: tuple[ModelSpec, ...]) -> RulesConfig:
    """The configured rules, minus what cannot hold in a world with its own catalog.

    Tier, tenant and default-model entries name the configured catalog's models, so they are
    dropped; and when no model of the world may see sensitive data, the data policy could only
    refuse requests, so detection is off (a dataset's prompts are replayed, not protected).
    """
    names = {m.name for m in specs}
    default_ok = rules.default_model in names
    return replace(
        rules,
        tiers={},
        tenants={},
        on_empty=rules.on_empty if default_ok else "reject",
        default_model=rules.default_model if default_ok else "",
        pii_detection=rules.pii_detection and any(m.allow_sensitive_data for m in specs),
    )


def rewards_of(records: list[dict[str, Any]], weights: RewardWeights) -> np.ndarray:
    return np.array(
        [
            reward_formula.combine(r["quality"], r["cost_usd"], r["latency_ms"], weights)
            for r in records
            if r["model"] is not None
        ]
    )


def last80(records: list[dict[str, Any]], weights: RewardWeights) -> dict[str, float]:
    """Spend, quality and reward over the last 80 % of the stream: what a controller holds once it has settled."""
    s = summarize(records[len(records) // 5 :], weights)
    return {k: s[k] for k in ("cost_per_1k_usd", "mean_quality", "mean_reward")} if s["n"] else {}


def summarize(records: list[dict[str, Any]], weights: RewardWeights) -> dict[str, Any]:
    """Mean reward, quality, cost per 1k requests, latency p50/p95, exploration and selection shares."""
    served = [r for r in records if r["model"] is not None]
    if not served:
        return {"n": 0}
    quality = np.array([r["quality"] for r in served])
    cost = np.array([r["cost_usd"] for r in served])
    latency = np.array([r["latency_ms"] for r in served])
    models, counts = np.unique([r["model"] for r in served], return_counts=True)
    return {
        "n": len(served),
        "unrouted": len(records) - len(served),
        "mean_reward": float(rewards_of(served, weights).mean()),
        "mean_quality": float(quality.mean()),
        "mean_cost_usd": float(cost.mean()),
        "cost_per_1k_usd": float(cost.mean() * 1000),
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p95_ms": float(np.percentile(latency, 95)),
        "explored_share": float(np.mean([r["explored"] for r in served])),
        "errors": int(sum(r["error"] is not None for r in served)),
        "selection_share": {str(m): float(c / len(served)) for m, c in zip(models, counts)},
    }
