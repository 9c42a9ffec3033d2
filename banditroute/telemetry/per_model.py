"""The dashboard's per-model table: what each model was chosen for, scored and cost, and its rules' state. Pure.

`ModelOutcomes` sums the outcomes of the finished joins per chosen model (restored from the log at
start, then fed by every join the router finishes): the qualities observed, not those filled in by
`reward.default_quality`, and the costs the rewards used. `model_table` joins them with the
router's counters as /stats shows them (selection counts, rewards per model, cooldowns), so the
table and /stats agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from banditroute.telemetry.timeseries import PER_1K
from banditroute.types import LearnedRow

COOLDOWN, COLD_START, ACTIVE = "cooldown", "cold_start", "active"
QUALITY_DEFAULTED = "quality"  # in LearnedRow.defaulted: `reward.default_quality` stood in for the answer's


@dataclass(slots=True)
class Outcomes:
    """Sums over one model's finished joins: quality where one was learned, cost where one was known."""

    rated: int = 0
    quality_sum: float = 0.0
    costed: int = 0
    cost_sum: float = 0.0


class ModelOutcomes:
    def __init__(self) -> None:
        self.by_model: dict[str, Outcomes] = {}

    def learned(self, model: str, row: LearnedRow) -> None:
        """A finished join of a decision that chose `model`; a quality filled in by default is not counted."""
        sums = self.by_model.setdefault(model, Outcomes())
        if row.quality is not None and QUALITY_DEFAULTED not in row.defaulted.split(","):
            sums.rated += 1
            sums.quality_sum += row.quality
        if row.cost_usd is not None:
            sums.costed += 1
            sums.cost_sum += row.cost_usd

    def restore(self, rows: Iterable[tuple[str, int, float, int, float]]) -> None:
        """Add the log's sums: (model, rated, quality sum, costed, cost sum) per model."""
        for model, rated, quality_sum, costed, cost_sum in rows:
            sums = self.by_model.setdefault(model, Outcomes())
            sums.rated += rated
            sums.quality_sum += quality_sum
            sums.costed += costed
            sums.cost_sum += cost_sum


def model_table(
    models: Sequence[str],
    selections: Mapping[str, int],
    rewards: Mapping[str, int],
    cooldowns: Mapping[str, float],
    cold_start: Iterable[str],
    outcomes: ModelOutcomes,
) -> list[dict[str, Any]]:
    """One row per catalog model, in catalog order.

    `share`: its share of all decisions (as /stats `selection_share`; 0 when never chosen);
    `mean_quality` and `cost_per_1k` (USD per 1,000 requests): over its finished joins, None before
    the first; `rewards`: rewards learned (/stats `rewards_per_model`); `state`: `cooldown` while
    the cooldown rule excludes it (`cooldown_remaining_s` says for how long), `cold_start` while it
    has fewer rewards than `rules.cold_start_rewards`, else `active`.
    """
    total = sum(selections.values())
    cold = set(cold_start)
    rows = []
    for m in models:
        sums = outcomes.by_model.get(m, Outcomes())
        remaining = cooldowns.get(m)
        rows.append(
            {
                "model": m,
                "decisions": selections.get(m, 0),
                "share": selections.get(m, 0) / total if total else 0.0,
                "mean_quality": sums.quality_sum / sums.rated if sums.rated else None,
                "cost_per_1k": PER_1K * sums.cost_sum / sums.costed if sums.costed else None,
                "rewards": rewards.get(m, 0),
                "state": COOLDOWN if remaining is not None else COLD_START if m in cold else ACTIVE,
                "cooldown_remaining_s": remaining,
            }
        )
    return rows
