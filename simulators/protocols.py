"""The measurement protocols of `banditroute quality` and `sweep` (issue 14): cold, warm and drift.

Each protocol drives the real Router through a seeded world and scores it over the *counted* steps,
next to baselines scored over the same steps with full information:
- `cold`: one pass from nothing; every step is counted.
- `warm`: the first `evals` steps of the seeded order are an eval sample with every model's outcome,
  given to `Router.warmstart`; the rest is routed online and counted. Extra baseline `best_on_evals`:
  the model with the best mean reward on the eval sample at that weight (what a team without a
  router would pick), scored on the counted part.
- `drift:<world>`: a world of `simulators.commands.perturb` at its default placement (`drift`,
  `price`, `new-model`, `outage`), built around the base world's best fixed model at that weight
  (the highest-quality one for `new-model`); counted from the change step on (for `outage`, from
  its start). Extra baselines: `before_best_fixed`, the best fixed model of the steps before the
  change, scored after it; and `frozen`, the same router, seed and world, learning nothing decided
  from the change on (`simulate(freeze_at=...)`: only the Router's public interface, so any
  learner drops in).
`best_fixed`, `oracle` and `cost_greedy` are over the counted steps; `skyline` (a full-information
ridge on the text, cross-fitted over the whole base world) applies to cold and warm only: in a
perturbed world its fit would mix the regimes. Protocol `drift` is the four worlds, one row each.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from banditroute.config import Config
from banditroute.types import RewardWeights
from simulators.baselines import Outcomes, Skyline, best_model, full_outcomes
from simulators.simulate import FeedbackModel, rewards_of, summarize
from simulators.sweep import at_weight, hull_at_router, run_pass, scored_rows
from simulators.worlds import World

DRIFT_WORLDS = ("drift", "price", "new-model", "outage")
PROTOCOLS = ("cold", "warm", *(f"drift:{w}" for w in DRIFT_WORLDS))
DEFAULT_EVALS = 200

# quality.csv, exactly: mean rewards over the counted prompts, empty where a baseline does not apply.
CSV_COLUMNS = (
    "set",
    "protocol",
    "cost_weight",
    "seed",
    "router",
    "best_fixed",
    "best_on_evals",
    "frozen",
    "before_best_fixed",
    "oracle",
    "skyline",
    "cost_greedy",
)


@dataclass(frozen=True, slots=True)
class Cell:
    """One (set, protocol, cost weight, seed): the csv row's values, then what the tables add."""

    dataset: str
    protocol: str
    cost_weight: float
    seed: int
    router: float
    best_fixed: float
    best_on_evals: float | None
    frozen: float | None
    before_best_fixed: float | None
    oracle: float
    skyline: float | None
    cost_greedy: float
    # Not in the csv:
    counted: int  # the routed prompts the means are over
    best_fixed_model: str
    router_quality: float
    router_cost_usd: float
    explored_share: float
    hull_margin: float  # router quality minus the single models' upper hull at the router's cost

    def csv_row(self) -> dict[str, str]:
        values = [getattr(self, f.name) for f in fields(self)][: len(CSV_COLUMNS)]
        return {k: _csv_value(v) for k, v in zip(CSV_COLUMNS, values)}


@dataclass(frozen=True)
class Measurement:
    cells: list[Cell]
    frontier: list[dict]  # the first seed's frontier rows (`simulators.sweep` format) of the first protocol
    name: str  # the data set's
    prompts: int  # in the base world


def parse_protocols(values: Iterable[str]) -> list[str]:
    """`cold`, `warm`, `drift` (its four worlds) or `drift:<world>`, comma-separated or repeated.

    In the order given, each once."""
    out: list[str] = []
    for value in values:
        for name in (v.strip() for v in value.split(",") if v.strip()):
            names = [f"drift:{w}" for w in DRIFT_WORLDS] if name == "drift" else [name]
            for n in names:
                if n not in PROTOCOLS:
                    raise ValueError(f"unknown protocol {n!r}: cold, warm, drift or one of {', '.join(PROTOCOLS[2:])}")
                if n not in out:
                    out.append(n)
    return out


def measure(
    world_of: Callable[[int], World],
    *,
    protocols: Sequence[str],
    weights: Sequence[float],
    seeds: Sequence[int],
    config: Config,
    evals: int = DEFAULT_EVALS,
    feedback: FeedbackModel = FeedbackModel(),
    skyline: bool = True,
    progress: bool = False,
) -> Measurement:
    """Every (protocol, weight, seed) cell; `world_of(seed)` is the base world in that seed's order."""
    cells: list[Cell] = []
    frontier: list[dict] = []
    for seed in seeds:
        base = world_of(seed)
        outcomes = full_outcomes(base)
        needs_sky = skyline and any(p in ("cold", "warm") for p in protocols)
        sky = Skyline(base, outcomes, seed=seed) if needs_sky else None
        perturbed: dict[str, tuple[World, Outcomes]] = {}  # by world name: the same world at several weights
        for protocol in protocols:
            for weight in weights:
                cfg = config.with_overrides(reward={"cost_weight": float(weight)})
                run = _Run(cfg, feedback, seed, progress)
                if protocol == "cold":
                    cell, rows = run.cold(base, outcomes, sky)
                elif protocol == "warm":
                    cell, rows = run.warm(base, outcomes, sky, evals)
                else:
                    world, world_outcomes = _perturbed(base, outcomes, cfg.reward.weights, protocol, perturbed)
                    cell, rows = run.drift(world, world_outcomes, protocol)
                cells.append(cell)
                if seed == seeds[0] and protocol == protocols[0]:
                    frontier += at_weight(weight, rows)
    return Measurement(cells, frontier, base.name, len(base))


def _perturbed(
    base: World, outcomes: Outcomes, weights: RewardWeights, protocol: str, cache: dict[str, tuple[World, Outcomes]]
) -> tuple[World, Outcomes]:
    from simulators.commands import perturb

    best = outcomes.models[best_model(outcomes, weights)]
    top = outcomes.models[int(np.argmax(np.nanmean(outcomes.quality, axis=0)))]
    world = perturb(base, protocol.removeprefix("drift:"), best, top)
    if world.name not in cache:
        cache[world.name] = (world, full_outcomes(world))
    return cache[world.name]


@dataclass(frozen=True)
class _Run:
    """The router runs of one (weight, seed), one method per protocol: each returns its cell and frontier rows."""

    config: Config
    feedback: FeedbackModel
    seed: int
    progress: bool

    @property
    def weights(self) -> RewardWeights:
        return self.config.reward.weights

    def _pass(self, world: World, *, evals: int = 0, freeze_at: int | None = None) -> list[dict]:
        kwargs = {"evals": evals, "freeze_at": freeze_at, "progress": self.progress}
        return run_pass(world, self.config, self.feedback, self.seed, **kwargs).records

    def cold(self, world: World, outcomes: Outcomes, sky: Skyline | None) -> tuple[Cell, list[dict]]:
        summary = summarize(self._pass(world), self.weights)
        rows = scored_rows(summary, outcomes, self.weights, world, sky)
        return self._cell(world, "cold", rows, summary["n"]), rows

    def warm(self, world: World, outcomes: Outcomes, sky: Skyline | None, evals: int) -> tuple[Cell, list[dict]]:
        if not 0 < evals < len(world):
            raise ValueError(f"--evals must be between 1 and the prompts of {world.name} minus 1 ({len(world) - 1})")
        summary = summarize(self._pass(world, evals=evals), self.weights)
        rows = scored_rows(summary, outcomes, self.weights, world, sky, start=evals)
        on_evals = _mean_from(outcomes, self.weights, best_model(outcomes, self.weights, 0, evals), evals)
        return self._cell(world, "warm", rows, summary["n"], best_on_evals=on_evals), rows

    def drift(self, world: World, outcomes: Outcomes, protocol: str) -> tuple[Cell, list[dict]]:
        change = world.change_step
        assert change is not None, f"{world.name} has no change step"
        summary = summarize(_from(self._pass(world), change), self.weights)
        frozen = rewards_of(_from(self._pass(world, freeze_at=change), change), self.weights)
        rows = scored_rows(summary, outcomes, self.weights, world, None, start=change)
        before = _mean_from(outcomes, self.weights, best_model(outcomes, self.weights, 0, change), change)
        cell = self._cell(world, protocol, rows, summary["n"], frozen=float(frozen.mean()), before_best_fixed=before)
        return cell, rows

    def _cell(
        self,
        world: World,
        protocol: str,
        rows: list[dict],
        counted: int,
        *,
        best_on_evals: float | None = None,
        frozen: float | None = None,
        before_best_fixed: float | None = None,
    ) -> Cell:
        at = {r["policy"]: r for r in rows}
        router = at["router"]
        return Cell(
            dataset=_set_name(world),
            protocol=protocol,
            cost_weight=self.config.reward.cost_weight,
            seed=self.seed,
            router=router["mean_reward"],
            best_fixed=at["best_fixed"]["mean_reward"],
            best_on_evals=best_on_evals,
            frozen=frozen,
            before_best_fixed=before_best_fixed,
            oracle=at["oracle"]["mean_reward"],
            skyline=at["skyline"]["mean_reward"] if "skyline" in at else None,
            cost_greedy=at["cost_greedy"]["mean_reward"],
            counted=counted,
            best_fixed_model=at["best_fixed"]["model"],
            router_quality=router["mean_quality"],
            router_cost_usd=router["mean_cost_usd"],
            explored_share=router["explored_share"],
            hull_margin=hull_at_router(rows)[1],
        )


def _from(records: list[dict], step: int) -> list[dict]:
    return [r for r in records if r["step"] >= step]


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _mean_from(outcomes: Outcomes, weights: RewardWeights, model: int, start: int) -> float:
    """A fixed model's mean reward over the steps from `start` (NaN where it was unavailable: skipped)."""
    return float(np.nanmean(outcomes.reward(weights)[start:, model]))


def _set_name(world: World) -> str:
    """The data set a (possibly perturbed) world replays: the innermost world's name."""
    while hasattr(world, "base"):
        world = world.base
    return world.name


def write_csv(cells: Iterable[Cell], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for cell in cells:
            writer.writerow(cell.csv_row())


@dataclass(frozen=True, slots=True)
class Switch:
    """The mid-stream weight switch check of one (set, seed): mean rewards at weight `after` over the second half."""

    dataset: str
    seed: int
    before: float
    after: float
    switched: float  # a router at `before`, switched to `after` through `set_weights` at mid-stream
    constant: float  # a router at `after` from the start


def weight_switch(
    world: World,
    config: Config,
    before: float,
    after: float,
    *,
    seed: int = 0,
    feedback: FeedbackModel = FeedbackModel(),
) -> Switch:
    """Run a router at cost weight `before` switched to `after` at mid-stream, and one at `after` throughout."""
    half = len(world) // 2
    at_after = config.with_overrides(reward={"cost_weight": after})
    weights = at_after.reward.weights

    def second_half(cfg: Config, switch: bool) -> float:
        from simulators.simulate import new_router, simulate

        router = new_router(world, cfg)
        records = []
        # The generator routes a step only when asked for it, so the switch lands between two requests.
        for record in simulate(router, world, feedback, seed=seed):
            records.append(record)
            if switch and record["step"] == half - 1:
                router.set_weights(after, at_after.reward.latency_weight)
        return float(rewards_of(records[half:], weights).mean())

    switched = second_half(config.with_overrides(reward={"cost_weight": before}), switch=True)
    return Switch(_set_name(world), seed, before, after, switched, second_half(at_after, switch=False))
