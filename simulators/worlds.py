"""Worlds the router can be replayed through: logged data sets and synthetic perturbations of them.

A world is a finite stream of requests and, for every step and model, what would happen if that
model served it. The router only ever sees the outcome of the model it chose (bandit feedback);
baselines and the oracle may look at every model (full information).

Latency is *modelled*, not measured (no public routing set records it): time to first token plus
output tokens over a per-model speed, both derived from the model's price class, times log-normal
noise. `latency_model` documents the formula.

Writing your own world takes a few lines: subclass `World` and implement `__len__`, `request`,
`outcome` and `models` (see `Drift` for a wrapper that changes one thing of another world).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from banditroute.types import ModelSpec
from simulators.datasets import Dataset, price_per_token_estimates


@dataclass(frozen=True, slots=True)
class Request:
    step: int
    query: str
    task: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    """What serving one request with one model produces (the truth, before any feedback noise)."""

    quality: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    latency_ms: float
    error: str | None = None


class World:
    """The interface every world implements."""

    name = "world"
    # The step from which the world differs from the one it wraps (None: it never changes), where the
    # drift protocol starts counting.
    change_step: int | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def models(self, step: int) -> tuple[ModelSpec, ...]:
        """The catalog at `step` (worlds may add models or change prices over time)."""
        raise NotImplementedError

    def request(self, step: int) -> Request:
        raise NotImplementedError

    def outcome(self, step: int, model: str) -> Result:
        raise NotImplementedError


def latency_model(blended_price_per_m: float) -> tuple[float, float]:
    """(time to first token in ms, output tokens per second) for a model's price class.

    Assumption, documented: pricier models are larger and slower. A model at $0.1/M starts in
    ~300 ms at ~130 tok/s; one at $10/M in ~1,000 ms at ~45 tok/s.
    """
    level = math.log10(max(blended_price_per_m, 0.01) / 0.1)  # 0 at $0.1/M, 2 at $10/M
    return 300.0 + 350.0 * max(level, 0.0), 130.0 / (1.0 + 0.95 * max(level, 0.0))


class DatasetWorld(World):
    """Prompts of a logged data set in a seeded random order, one pass.

    Prompts where some model has no recorded result are dropped (every model must be servable).
    `with_task` passes the data set's task label as `metadata.task`.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        seed: int = 0,
        with_task: bool = False,
        latency_noise: float = 0.3,
        context_window: int = 1_000_000,
    ):
        complete = ~np.isnan(dataset.quality).any(axis=1)
        rows = np.flatnonzero(complete)
        rng = np.random.default_rng(seed)
        self.order = rows[rng.permutation(len(rows))]
        self.dataset = dataset
        self.name = dataset.name
        self.with_task = with_task
        prices = price_per_token_estimates(dataset)
        specs = []
        for name in dataset.models:
            p_in, p_out = prices[name]
            ttft, speed = latency_model((p_in + 3 * p_out) / 4)
            specs.append(
                ModelSpec(
                    name=name,
                    input_price=p_in,
                    output_price=p_out,
                    context_window=context_window,
                    latency_ttft_ms=ttft,
                    tokens_per_s=speed,
                )
            )
        self._specs = tuple(specs)
        self._index = {name: j for j, name in enumerate(dataset.models)}
        self._noise = rng.lognormal(0.0, latency_noise, size=(len(self.order), len(specs)))

    def __len__(self) -> int:
        return len(self.order)

    def models(self, step: int) -> tuple[ModelSpec, ...]:
        return self._specs

    def request(self, step: int) -> Request:
        i = self.order[step]
        task = self.dataset.tasks[i]
        meta = {"task": task} if self.with_task and task else {}
        return Request(step, self.dataset.prompts[i], task, meta)

    def outcome(self, step: int, model: str) -> Result:
        i, j = self.order[step], self._index[model]
        ds, spec = self.dataset, self._specs[j]
        out_tokens = int(ds.output_tokens[i, j])
        latency = (spec.latency_ttft_ms + 1000.0 * out_tokens / spec.tokens_per_s) * self._noise[step, j]
        return Result(
            float(ds.quality[i, j]), float(ds.cost_usd[i, j]), int(ds.input_tokens[i, j]), out_tokens, latency
        )


class Wrapper(World):
    """A world that changes one thing of another; everything else is delegated."""

    def __init__(self, base: World):
        self.base = base
        self.name = base.name
        self.change_step = base.change_step

    def __len__(self) -> int:
        return len(self.base)

    def models(self, step: int) -> tuple[ModelSpec, ...]:
        return self.base.models(step)

    def request(self, step: int) -> Request:
        return self.base.request(step)

    def outcome(self, step: int, model: str) -> Result:
        return self.base.outcome(step, model)


class Drift(Wrapper):
    """From step `start` on, `model`'s quality moves by `delta` (clipped to [0, 1])."""

    def __init__(self, base: World, model: str, start: int, delta: float):
        super().__init__(base)
        self.model, self.start, self.delta = model, start, delta
        self.change_step = start
        self.name = f"{base.name}+drift({model},{delta:+g}@{start})"

    def outcome(self, step: int, model: str) -> Result:
        r = self.base.outcome(step, model)
        if model == self.model and step >= self.start:
            return replace(r, quality=min(1.0, max(0.0, r.quality + self.delta)))
        return r


class Outage(Wrapper):
    """`model` fails (server_error, nothing delivered) for steps in [start, end)."""

    def __init__(self, base: World, model: str, start: int, end: int):
        super().__init__(base)
        self.model, self.start, self.end = model, start, end
        self.change_step = start
        self.name = f"{base.name}+outage({model}@{start}-{end})"

    def outcome(self, step: int, model: str) -> Result:
        r = self.base.outcome(step, model)
        if model == self.model and self.start <= step < self.end:
            return replace(r, quality=0.0, output_tokens=0, cost_usd=0.0, latency_ms=30_000.0, error="server_error")
        return r


class PriceChange(Wrapper):
    """From step `at` on, `model` costs `factor` times as much (catalog and outcomes)."""

    def __init__(self, base: World, model: str, at: int, factor: float):
        super().__init__(base)
        self.model, self.at, self.factor = model, at, factor
        self.change_step = at
        self.name = f"{base.name}+price({model}x{factor:g}@{at})"

    def models(self, step: int) -> tuple[ModelSpec, ...]:
        specs = self.base.models(step)
        if step < self.at:
            return specs
        return tuple(
            replace(s, input_price=s.input_price * self.factor, output_price=s.output_price * self.factor)
            if s.name == self.model
            else s
            for s in specs
        )

    def outcome(self, step: int, model: str) -> Result:
        r = self.base.outcome(step, model)
        if model == self.model and step >= self.at:
            return replace(r, cost_usd=r.cost_usd * self.factor)
        return r


class NewModel(Wrapper):
    """`model` does not exist before step `at`; from then on it is in the catalog."""

    def __init__(self, base: World, model: str, at: int):
        super().__init__(base)
        self.model, self.at = model, at
        self.change_step = at
        self.name = f"{base.name}+new({model}@{at})"

    def models(self, step: int) -> tuple[ModelSpec, ...]:
        specs = self.base.models(step)
        return specs if step >= self.at else tuple(s for s in specs if s.name != self.model)


class Reordered(Wrapper):
    """The base world's requests in another order (e.g. a task mix that shifts mid-stream)."""

    def __init__(self, base: World, order: np.ndarray, label: str = "reordered"):
        super().__init__(base)
        self.order = np.asarray(order)
        self.name = f"{base.name}+{label}"

    def request(self, step: int) -> Request:
        return replace(self.base.request(int(self.order[step])), step=step)

    def outcome(self, step: int, model: str) -> Result:
        return self.base.outcome(int(self.order[step]), model)


def task_mix_shift(base: World, seed: int = 0) -> Reordered:
    """First the requests of half the tasks, then those of the other half (seeded choice of halves)."""
    tasks = [base.request(s).task or "" for s in range(len(base))]
    names = sorted(set(tasks))
    rng = np.random.default_rng(seed)
    first = set(rng.permutation(names)[: max(1, len(names) // 2)].tolist())
    early = [s for s, t in enumerate(tasks) if t in first]
    late = [s for s, t in enumerate(tasks) if t not in first]
    return Reordered(base, np.array(early + late, dtype=np.int64), "task_shift")
