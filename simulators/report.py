"""The routing-quality report: does the router add value over every single model, at every weight?

`run` drives `banditroute quality` (`make quality`): the protocols of `simulators.protocols` over
several data sets and seeds, written as `quality.csv` (one row per set, protocol, weight and seed),
`quality.md` (a table per protocol judged against issue 14's targets, with the mid-stream weight
switch check if asked for) and, per set, the frontier csv and plot of the first protocol and seed.

For one sweep's rows at each cost weight, `quality_rows` tells:
- the router's mean reward against the best fixed model in hindsight (`beats_best_fixed`);
- where the router's (cost, quality) point lies against the upper hull of the single models'
  points, which mixing two models at random reaches (`hull_margin`: router quality minus the hull's
  quality at the router's cost; `on_hull` when it is not below, up to `HULL_TOLERANCE`);
- the share of the gap between best fixed and the oracle that the router recovers.

"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulators.protocols import DEFAULT_EVALS, Cell, Switch, measure, weight_switch
from simulators.protocols import write_csv as write_cells
from simulators.sweep import hull_at_router
from simulators.worlds import DatasetWorld

# The hull test compares two means over the same stream; a difference below this is rounding, not
# a miss (a tenth of a quality point on a 0..100 scale).
HULL_TOLERANCE = 1e-3

REPORT_COLUMNS = (
    "dataset",
    "cost_weight",
    "router_reward",
    "best_fixed_reward",
    "best_fixed_model",
    "skyline_reward",
    "oracle_reward",
    "router_quality",
    "router_cost_per_1k_usd",
    "hull_quality",
    "hull_margin",
    "beats_best_fixed",
    "on_hull",
    "gap_recovered",
)


def quality_rows(rows: Sequence[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    """One report row per cost weight of a sweep's rows (see `simulators.sweep.sweep`)."""
    out = []
    for weight in sorted({r["cost_weight"] for r in rows}):
        at = {r["policy"]: r for r in rows if r["cost_weight"] == weight}
        router, best, oracle = at["router"], at["best_fixed"], at["oracle"]
        hull_q, margin = hull_at_router(at.values())
        gap = oracle["mean_reward"] - best["mean_reward"]
        out.append(
            {
                "dataset": dataset,
                "cost_weight": weight,
                "router_reward": router["mean_reward"],
                "best_fixed_reward": best["mean_reward"],
                "best_fixed_model": best.get("model", ""),
                "skyline_reward": at["skyline"]["mean_reward"] if "skyline" in at else None,
                "oracle_reward": oracle["mean_reward"],
                "router_quality": router["mean_quality"],
                "router_cost_per_1k_usd": router["mean_cost_usd"] * 1000,
                "hull_quality": hull_q,
                "hull_margin": margin,
                "beats_best_fixed": router["mean_reward"] >= best["mean_reward"],
                "on_hull": margin >= -HULL_TOLERANCE,
                "gap_recovered": (router["mean_reward"] - best["mean_reward"]) / gap if gap > 0 else None,
            }
        )
    return out


# Issue 14's targets, as the tables judge them: cold within COLD_TOLERANCE of best fixed (mean over
# seeds), PILOT_TOLERANCE on pilots of at most PILOT_PROMPTS prompts; warm at least best fixed (mean)
# and no seed more than EVALS_TOLERANCE below best on evals; drift at least the frozen router and the
# earlier best fixed (means); a switched weight within SWITCH_TOLERANCE of the weight held throughout.
COLD_TOLERANCE = 0.02
PILOT_TOLERANCE = 0.05
PILOT_PROMPTS = 300
EVALS_TOLERANCE = 0.01
SWITCH_TOLERANCE = 0.01


@dataclass(frozen=True)
class Report:
    cells: list[Cell]
    switches: list[Switch]
    markdown: str


def _groups(cells: Iterable[Cell], family: str) -> list[list[Cell]]:
    """The cells of a protocol family (cold, warm, drift), one list per (set, protocol, weight), in run order."""
    groups: dict[tuple[str, str, float], list[Cell]] = {}
    for c in cells:
        if c.protocol.split(":")[0] == family:
            groups.setdefault((c.dataset, c.protocol, c.cost_weight), []).append(c)
    return list(groups.values())


def _mean(cells: Sequence[Cell], attr: str) -> float | None:
    values = [getattr(c, attr) for c in cells]
    return None if any(v is None for v in values) else float(np.mean(values))


def _margins(cells: Sequence[Cell], attr: str) -> list[float]:
    return [c.router - getattr(c, attr) for c in cells]


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _diff(cells: Sequence[Cell], attr: str) -> str:
    """Router minus a baseline: the mean over seeds, and the worst seed when there are several."""
    d = _margins(cells, attr)
    return f"{np.mean(d):+.3f}" + (f" ({min(d):+.3f})" if len(d) > 1 else "")


def _gap(cells: Sequence[Cell]) -> str:
    best, oracle, router = (_mean(cells, a) for a in ("best_fixed", "oracle", "router"))
    assert best is not None and oracle is not None and router is not None
    return f"{100 * (router - best) / (oracle - best):.0f}%" if oracle > best else "–"


def _hull(cells: Sequence[Cell]) -> str:
    """Router quality minus the single models' upper hull at the router's cost: mean, and how many seeds clear it."""
    on = sum(c.hull_margin >= -HULL_TOLERANCE for c in cells)
    return f"{np.mean([c.hull_margin for c in cells]):+.3f} ({on}/{len(cells)})"


def _best(cells: Sequence[Cell]) -> str:
    models = dict.fromkeys(c.best_fixed_model.split("/")[-1] for c in cells)
    return f"{_num(_mean(cells, 'best_fixed'))} ({', '.join(models)})"


def meets_target(cells: Sequence[Cell]) -> bool:
    """Issue 14's target for one (set, protocol, weight) over its seeds."""
    family = cells[0].protocol.split(":")[0]

    def mean(attr: str) -> float:
        return float(np.mean(_margins(cells, attr)))

    if family == "cold":
        pilot = max(c.counted for c in cells) <= PILOT_PROMPTS
        return mean("best_fixed") >= -(PILOT_TOLERANCE if pilot else COLD_TOLERANCE)
    if family == "warm":
        return mean("best_fixed") >= 0 and min(_margins(cells, "best_on_evals")) >= -EVALS_TOLERANCE
    return mean("frozen") >= 0 and mean("before_best_fixed") >= 0


_COLUMNS: dict[str, list[tuple[str, Callable[[Sequence[Cell]], str]]]] = {
    "cold": [
        ("best fixed (model)", _best),
        ("router − best fixed", lambda g: _diff(g, "best_fixed")),
        ("skyline", lambda g: _num(_mean(g, "skyline"))),
        ("oracle", lambda g: _num(_mean(g, "oracle"))),
        ("cost greedy", lambda g: _num(_mean(g, "cost_greedy"))),
        ("gap recovered", _gap),
        ("explored", lambda g: f"{100 * (_mean(g, 'explored_share') or 0):.0f}%"),
        ("router − hull (seeds on/above)", _hull),
    ],
    "warm": [
        ("best fixed (model)", _best),
        ("router − best fixed", lambda g: _diff(g, "best_fixed")),
        ("best on evals", lambda g: _num(_mean(g, "best_on_evals"))),
        ("router − best on evals", lambda g: _diff(g, "best_on_evals")),
        ("skyline", lambda g: _num(_mean(g, "skyline"))),
        ("oracle", lambda g: _num(_mean(g, "oracle"))),
        ("gap recovered", _gap),
        ("explored", lambda g: f"{100 * (_mean(g, 'explored_share') or 0):.0f}%"),
    ],
    "drift": [
        ("frozen", lambda g: _num(_mean(g, "frozen"))),
        ("router − frozen", lambda g: _diff(g, "frozen")),
        ("before best fixed", lambda g: _num(_mean(g, "before_best_fixed"))),
        ("router − before best fixed", lambda g: _diff(g, "before_best_fixed")),
        ("best fixed (model)", _best),
        ("router − best fixed", lambda g: _diff(g, "best_fixed")),
        ("oracle", lambda g: _num(_mean(g, "oracle"))),
    ],
}
_TARGETS = {
    "cold": f"mean ≥ best fixed − {COLD_TOLERANCE:g} (− {PILOT_TOLERANCE:g} on ≤ {PILOT_PROMPTS} prompts)",
    "warm": f"mean ≥ best fixed, and every seed ≥ best on evals − {EVALS_TOLERANCE:g}",
    "drift": "mean ≥ the frozen router and ≥ the best fixed model before the change",
}


def protocol_table(cells: Iterable[Cell], family: str) -> str:
    """The markdown table of a protocol family: one line per (set, protocol, weight), means over seeds."""
    groups = _groups(cells, family)
    if not groups:
        return ""
    extra = _COLUMNS[family]
    world = family == "drift"
    head = ["set", *(["world"] if world else []), "cost_weight", "prompts", "router"]
    head += [h for h, _ in extra] + ["target"]
    left = ("set", "world", "best fixed (model)", "target")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if h in left else "---:" for h in head) + "|"]
    met = 0
    for g in groups:
        ok = meets_target(g)
        met += ok
        first = g[0]
        cells_ = [first.dataset, *([first.protocol.removeprefix("drift:")] if world else [])]
        cells_ += [f"{first.cost_weight:g}", str(first.counted), _num(_mean(g, "router"))]
        cells_ += [fn(g) for _, fn in extra] + ["yes" if ok else "NO"]
        lines.append("| " + " | ".join(cells_) + " |")
    seeds = sorted({c.seed for grp in groups for c in grp})
    note = (
        f"Mean reward over the counted prompts, mean over seeds {','.join(map(str, seeds))}; "
        "a difference in brackets is the worst seed. "
        f"Target ({_TARGETS[family]}): {met} of {len(groups)} met."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def switch_table(switches: Sequence[Switch]) -> str:
    """The mid-stream weight switch check: per set, the second half's mean reward, means over seeds."""
    if not switches:
        return ""
    s0 = switches[0]
    lines = [
        f"| set | switched {s0.before:g} → {s0.after:g} | at {s0.after:g} throughout | difference | within "
        f"{SWITCH_TOLERANCE:g} |",
        "|---|---:|---:|---:|---|",
    ]
    by_set: dict[str, list[Switch]] = {}
    for s in switches:
        by_set.setdefault(s.dataset, []).append(s)
    for name, group in by_set.items():
        d = [s.switched - s.constant for s in group]
        spread = f" ({min(d):+.3f}..{max(d):+.3f})" if len(d) > 1 else ""
        ok = abs(float(np.mean(d))) <= SWITCH_TOLERANCE
        lines.append(
            f"| {name} | {np.mean([s.switched for s in group]):.3f} | {np.mean([s.constant for s in group]):.3f} | "
            f"{np.mean(d):+.3f}{spread} | {'yes' if ok else 'NO'} |"
        )
    return "\n".join(lines) + "\n\nMeans over seeds; in brackets the lowest and highest seed's difference.\n"


def render(cells: Sequence[Cell], switches: Sequence[Switch], title: str, command: str) -> str:
    parts = [f"# {title}\n\nMade by `{command}`.\n"]
    sections = {"cold": "Cold start", "warm": "Warm start (evals before routing)", "drift": "After a change"}
    for family, heading in sections.items():
        table = protocol_table(cells, family)
        if table:
            parts.append(f"## {heading}\n\n{table}")
    if switches:
        parts.append(
            "## Weight switched at mid-stream\n\nMean reward over the second half, at the weight switched to.\n\n"
            + switch_table(switches)
        )
    return "\n".join(parts)


def run(
    data: Path,
    sets: Sequence[str],
    weights: Sequence[float],
    *,
    protocols: Sequence[str] = ("cold",),
    seeds: Sequence[int] = (0,),
    evals: int = DEFAULT_EVALS,
    out: Path,
    with_task: bool,
    config_path: str | None = None,
    limit: int | None = None,
    switch: tuple[float, float] | None = None,
    progress: bool = False,
    command: str = "banditroute quality",
) -> Report:
    """Measure every set; write `quality.csv`, `quality.md` and `<set>.csv`, `<set>.png` under `out`."""
    from banditroute.config import load_config
    from simulators.sweep import dataset_world, plot, write_csv

    config = load_config(config_path)
    out.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    switches: list[Switch] = []
    view = "with task label" if with_task else "text only"
    for name in sets:

        def world_of(seed: int, name: str = name) -> DatasetWorld:
            return dataset_world(data / name, seed=seed, with_task=with_task, limit=limit)

        m = measure(
            world_of, protocols=protocols, weights=weights, seeds=seeds, config=config, evals=evals, progress=progress
        )
        write_csv(m.frontier, out / f"{name}.csv")
        title = f"{name} ({view}, {protocols[0]}): {m.prompts} prompts, seed {seeds[0]}"
        plot(m.frontier, out / f"{name}.png", title)
        cells += m.cells
        if switch is not None:
            switches += [weight_switch(world_of(seed), config, *switch, seed=seed) for seed in seeds]
    write_cells(cells, out / "quality.csv")
    markdown = render(cells, switches, f"Routing quality ({view})", command)
    (out / "quality.md").write_text(markdown, encoding="utf-8")
    return Report(cells, switches, markdown)
