"""What retention may remove from the log, and when: `[store] retention_days`. Pure, no I/O.

An event (its decision, its feedback parts, its learned row) may go once all of these hold:

- its decision is older than the horizon: `retention_days` before now, and never inside the current
  budget period (`rules.budget_period_s`), whose spend a restart reads back from the log;
- its join has finished (a pending decision is waited for again after a restart: never removed);
- every checkpoint kept covers its learned row (`learned.seq <= learned_seq` of the oldest one), so
  recovery relearns everything after whichever checkpoint it falls back to, as without retention.

What is removed is tallied (decisions, parts, rewards and selections per model), so the counters that
`/stats` and the cold-start rule read back after a restart stay what they were.
"""

from __future__ import annotations

from collections.abc import Iterable

DAY_S = 86_400.0


def horizon(now: float, retention_days: float, budget_period_start: float) -> float | None:
    """Decisions before this time may be removed; None: `retention_days` is 0, keep everything.

    >>> horizon(10 * DAY_S, 7, 9.5 * DAY_S) / DAY_S
    3.0
    >>> horizon(10 * DAY_S, 0.25, 9.5 * DAY_S) / DAY_S  # not inside the current budget period
    9.5
    >>> horizon(10 * DAY_S, 0, 9.5 * DAY_S) is None
    True
    """
    if retention_days <= 0:
        return None
    return min(now - retention_days * DAY_S, budget_period_start)


def covered_seq(checkpoint_learned_seqs: Iterable[int]) -> int:
    """The newest learned seq every kept checkpoint includes; 0 (nothing covered) without one.

    >>> covered_seq([120, 90, 150])
    90
    >>> covered_seq([])
    0
    """
    return min(checkpoint_learned_seqs, default=0)
