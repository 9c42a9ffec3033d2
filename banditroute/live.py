"""What the rules learn online: latency p95, failure cooldowns, tenant spend, sticky conversations.

Plain bounded structures the Router owns; no clock inside (every call takes `now`), no I/O.
Each is bounded: per model by the catalog, per tenant by the configured budgets, per conversation
by `sticky_max_conversations` (least recently used first out).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping


class LatencyTracker:
    """The p95 of the latest `window` latencies reported per model; a prior until `min_samples`."""

    __slots__ = ("window", "min_samples", "_samples", "_p95", "_dirty", "_priors")

    def __init__(self, window: int, min_samples: int, priors: Mapping[str, float]):
        self.window = window
        self.min_samples = min_samples
        self._samples: dict[str, deque[float]] = {}
        self._p95: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._priors = dict(priors)

    def set_priors(self, priors: Mapping[str, float]) -> None:
        self._priors = dict(priors)
        for name in list(self._samples):
            if name not in self._priors:  # removed from the catalog: nothing will read it again
                del self._samples[name]
                self._p95.pop(name, None)
                self._dirty.discard(name)

    def observe(self, model: str, latency_ms: float) -> None:
        samples = self._samples.get(model)
        if samples is None:
            samples = self._samples[model] = deque(maxlen=self.window)
        samples.append(latency_ms)
        self._dirty.add(model)

    def p95(self, model: str) -> float:
        if model in self._dirty:
            self._dirty.discard(model)
            samples = self._samples[model]
            if len(samples) >= self.min_samples:
                self._p95[model] = quantile(sorted(samples), 0.95)
        return self._p95.get(model, self._priors.get(model, math.inf))

    def observed(self) -> dict[str, dict[str, float]]:
        """Models with observations: their p95 (or prior) and how many samples back it."""
        return {m: {"p95_ms": round(self.p95(m), 3), "samples": len(s)} for m, s in sorted(self._samples.items())}


def quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of sorted values: the smallest value with at least q of them at or below."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class Cooldowns:
    """`failures` failures of a model within `window_s` seconds pause it for `duration_s` seconds."""

    __slots__ = ("failures", "window_s", "duration_s", "_recent", "_until", "started")

    def __init__(self, failures: int, window_s: float, duration_s: float):
        self.failures = failures
        self.window_s = window_s
        self.duration_s = duration_s
        self._recent: dict[str, deque[float]] = {}
        self._until: dict[str, float] = {}
        self.started = 0

    def failure(self, model: str, now: float) -> bool:
        """Count one failure; True when it starts a cooldown."""
        recent = self._recent.get(model)
        if recent is None:
            recent = self._recent[model] = deque(maxlen=self.failures)
        recent.append(now)
        if len(recent) == self.failures and now - recent[0] <= self.window_s and not self.cooling(model, now):
            self._until[model] = now + self.duration_s
            recent.clear()
            self.started += 1
            return True
        return False

    def cooling(self, model: str, now: float) -> bool:
        until = self._until.get(model)
        if until is None:
            return False
        if now >= until:  # back in rotation on its own
            del self._until[model]
            return False
        return True

    def active(self, now: float) -> frozenset[str]:
        return frozenset(m for m in list(self._until) if self.cooling(m, now))

    def remaining(self, now: float) -> dict[str, float]:
        return {m: round(self._until[m] - now, 3) for m in sorted(self.active(now))}

    def forget_except(self, models: Iterable[str]) -> None:
        keep = set(models)
        for table in (self._recent, self._until):
            for name in [n for n in table if n not in keep]:
                del table[name]


class Spend:
    """USD spent per budgeted tenant in the current period (fixed windows of `period_s` from the epoch)."""

    __slots__ = ("period_s", "budgets", "_spent")

    def __init__(self, period_s: float, budgets: Mapping[str, float]):
        self.period_s = period_s
        self.budgets = dict(budgets)
        self._spent: dict[str, tuple[float, float]] = {}  # tenant -> (period index, USD)

    def _period(self, now: float) -> float:
        return now // self.period_s  # a float, so a simulator's final `now = inf` stays harmless

    def period_start(self, now: float) -> float:
        return self._period(now) * self.period_s

    def add(self, tenant: str | None, usd: float, now: float) -> None:
        if tenant is None or tenant not in self.budgets:
            return
        period = self._period(now)
        last, spent = self._spent.get(tenant, (period, 0.0))
        self._spent[tenant] = (period, (spent if last == period else 0.0) + usd)

    def spent(self, tenant: str, now: float) -> float:
        period, spent = self._spent.get(tenant, (None, 0.0))
        return spent if period == self._period(now) else 0.0

    def exhausted(self, tenant: str | None, now: float) -> bool:
        if tenant is None:
            return False
        cap = self.budgets.get(tenant)
        return cap is not None and self.spent(tenant, now) >= cap

    def reconfigure(self, period_s: float, budgets: Mapping[str, float]) -> None:
        if period_s != self.period_s:
            self._spent.clear()
        self.period_s = period_s
        self.budgets = dict(budgets)
        for tenant in [t for t in self._spent if t not in self.budgets]:
            del self._spent[tenant]

    def report(self, now: float) -> dict[str, dict[str, float]]:
        return {
            t: {"spent_usd": round(self.spent(t, now), 6), "budget_usd": cap} for t, cap in sorted(self.budgets.items())
        }


class Conversations:
    """conversation_id -> the model it was last routed to; entries expire after `ttl_s` of silence."""

    __slots__ = ("ttl_s", "max_size", "_models")

    def __init__(self, ttl_s: float, max_size: int):
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._models: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._models)

    def get(self, conversation_id: str, now: float) -> str | None:
        entry = self._models.get(conversation_id)
        if entry is None:
            return None
        model, seen = entry
        if now - seen > self.ttl_s:
            del self._models[conversation_id]
            return None
        return model

    def put(self, conversation_id: str, model: str, now: float) -> None:
        self._models[conversation_id] = (model, now)
        self._models.move_to_end(conversation_id)
        while len(self._models) > self.max_size:
            self._models.popitem(last=False)
