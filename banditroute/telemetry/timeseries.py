"""The dashboard's memory: per-interval aggregates in a bounded ring, and the latest decisions. Pure.

Time is passed in. A bucket covers `[start, start + interval_s)`; decisions count in the bucket of
their decision time, rewards in the bucket of their learning time (when the router learned them).
Only intervals with traffic get a bucket, so an idle hour costs nothing; the ring keeps the
newest `history` buckets.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from banditroute.types import Decision, LearnedRow

PER_1K = 1000.0  # the dashboard shows cost per 1,000 requests


@dataclass(slots=True)
class Bucket:
    start: float
    decisions: Counter[str] = field(default_factory=Counter)
    explored: int = 0
    learned: int = 0
    reward_sum: float = 0.0
    quality_sum: float = 0.0
    cost_sum: float = 0.0

    def to_json(self) -> dict[str, Any]:
        n = sum(self.decisions.values())
        return {
            "t": self.start,
            "decisions": n,
            "share": {m: c / n for m, c in sorted(self.decisions.items())} if n else {},
            "exploration_rate": self.explored / n if n else None,
            "learned": self.learned,
            "mean_reward": self.reward_sum / self.learned if self.learned else None,
            "mean_quality": self.quality_sum / self.learned if self.learned else None,
            "cost_per_1k": PER_1K * self.cost_sum / self.learned if self.learned else None,
        }


class TimeSeries:
    def __init__(self, interval_s: float, history: int, recent_max: int):
        self.interval_s = interval_s
        self.buckets: deque[Bucket] = deque(maxlen=history)
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent_max)

    def _bucket(self, now: float) -> Bucket:
        start = math.floor(now / self.interval_s) * self.interval_s
        if not self.buckets or self.buckets[-1].start < start:
            self.buckets.append(Bucket(start))
        return self.buckets[-1]  # a clock that stepped back adds to the newest bucket

    def decided(self, decision: Decision, excluded: Mapping[str, str]) -> None:
        bucket = self._bucket(decision.ts)
        bucket.decisions[decision.model] += 1
        bucket.explored += decision.explored
        shadow = decision.models[decision.shadow_chosen] if decision.shadow_chosen is not None else None
        self.recent.appendleft(
            {
                "ts": decision.ts,
                "event_id": decision.event_id,
                "model": decision.model,
                "probability": decision.probability,
                "explored": decision.explored,
                "reason": decision.reason,
                "bandit_pick": shadow,
                "excluded": len(excluded),
            }
        )

    def learned(self, decision: Decision, row: LearnedRow) -> None:
        if row.reward is None or row.quality is None:
            return
        bucket = self._bucket(row.ts)
        bucket.learned += 1
        bucket.reward_sum += row.reward
        bucket.quality_sum += row.quality
        bucket.cost_sum += row.cost_usd or 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "series": [b.to_json() for b in self.buckets],
            "recent": list(self.recent),
        }
