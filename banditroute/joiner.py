"""Join decisions with their feedback parts. Pure: the caller passes the time in.

A decision waits up to its deadline for the parts the reward needs (`required`: always a quality;
a cost when cost counts; a latency when latency counts). It is released as soon as they are all
in, when a failure is reported, or at its deadline with whatever arrived (the reward fills in the
rest). Parts for an event that is no longer pending are the caller's to store and count: they
are not learned (Personalizer semantics).

Bounded: beyond `max_pending` the oldest decision is released early, as if its deadline had passed.
The deadline queue keeps entries of events already released by their parts until their deadline;
it is compacted whenever it grows past twice the pending count (plus a slack), so its size stays
proportional to `max_pending` whatever the wait window and traffic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from banditroute.types import Decision, FeedbackPart, Outcome

PENDING = "pending"
COMPLETE = "complete"
NOT_PENDING = "not_pending"
# Deadline entries beyond twice the pending count before a compaction; amortises its O(n) cost.
_COMPACT_SLACK = 1024


@dataclass(slots=True)
class PartResult:
    status: str  # PENDING, COMPLETE or NOT_PENDING
    quality_applied: bool | None = None  # None when the part carried no quality
    joined: tuple[Decision, Outcome] | None = None


def required_parts(cost_weight: float, latency_weight: float) -> frozenset[str]:
    parts = {"quality"}
    if cost_weight > 0:
        parts.add("cost")
    if latency_weight > 0:
        parts.add("latency")
    return frozenset(parts)


class Joiner:
    __slots__ = ("required", "quality_rule", "max_pending", "_pending", "_outcomes", "_deadlines", "_pack", "_unpack")

    def __init__(
        self,
        required: frozenset[str],
        quality_rule: str = "first",
        max_pending: int = 1_000_000,
        pack: Callable[[Decision], Any] | None = None,
        unpack: Callable[[Any], Decision] | None = None,
    ):
        """`pack` / `unpack`: how a waiting decision is held (default: as it is). The router packs
        them into plain tuples: a million may wait, and objects the cyclic GC must scan would make
        its full collections take hundreds of milliseconds (see router.pack_pending)."""
        self.required = required
        self.quality_rule = quality_rule
        self.max_pending = max_pending
        self._pack = pack
        self._unpack = unpack
        # Decisions and their outcomes apart: most pending decisions never get a part, and a million
        # of them must fit in memory (no per-entry tuple; an Outcome only once a part arrives).
        self._pending: dict[str, Any] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._deadlines: deque[tuple[float, str]] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._pending

    def add(self, decision: Decision, deadline: float) -> list[tuple[Decision, Outcome]]:
        """Start waiting for `decision`; returns the decisions released to stay within bounds."""
        self._pending[decision.event_id] = decision if self._pack is None else self._pack(decision)
        self._deadlines.append((deadline, decision.event_id))
        if len(self._deadlines) > 2 * len(self._pending) + _COMPACT_SLACK:
            pending = self._pending
            self._deadlines = deque(entry for entry in self._deadlines if entry[1] in pending)
        released = []
        while len(self._pending) > self.max_pending:
            released.extend(self._pop_oldest())
        return released

    def add_part(self, part: FeedbackPart) -> PartResult:
        held = self._pending.get(part.event_id)
        if held is None:
            return PartResult(NOT_PENDING, None)
        outcome = self._outcomes.get(part.event_id)
        if outcome is None:
            outcome = self._outcomes[part.event_id] = Outcome()
        quality_applied = merge(outcome, part, self.quality_rule)
        if self._complete(outcome):
            del self._pending[part.event_id]
            del self._outcomes[part.event_id]
            return PartResult(COMPLETE, quality_applied, (self._decision(held), outcome))
        return PartResult(PENDING, quality_applied)

    def decision(self, event_id: str) -> Decision | None:
        held = self._pending.get(event_id)
        return self._decision(held) if held is not None else None

    def parts(self, event_id: str) -> int | None:
        """How many parts a pending event has received; None when it is not pending."""
        if event_id not in self._pending:
            return None
        outcome = self._outcomes.get(event_id)
        return outcome.parts if outcome is not None else 0

    def deadline_entries(self) -> int:
        return len(self._deadlines)

    def discard(self, event_id: str) -> None:
        """Stop waiting for an event without releasing it (its deadline entry is skipped later)."""
        self._pending.pop(event_id, None)
        self._outcomes.pop(event_id, None)

    def expire(self, now: float, limit: int | None = None) -> list[tuple[Decision, Outcome]]:
        """Release every decision whose deadline is at or before `now` (at most `limit` of them)."""
        released: list[tuple[Decision, Outcome]] = []
        while self._deadlines and self._deadlines[0][0] <= now and (limit is None or len(released) < limit):
            released.extend(self._pop_oldest())
        return released

    def next_deadline(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    def _pop_oldest(self) -> list[tuple[Decision, Outcome]]:
        _, event_id = self._deadlines.popleft()
        held = self._pending.pop(event_id, None)
        if held is None:  # already released when its parts completed
            return []
        outcome = self._outcomes.pop(event_id, None)
        return [(self._decision(held), outcome if outcome is not None else Outcome())]

    def _decision(self, held: Any) -> Decision:
        return held if self._unpack is None else self._unpack(held)

    def _complete(self, outcome: Outcome) -> bool:
        if outcome.error is not None:
            return True
        req = self.required
        if "quality" in req and outcome.quality is None:
            return False
        if "cost" in req and outcome.cost_usd is None and outcome.output_tokens is None:
            return False
        return not ("latency" in req and outcome.latency_ms is None)


def merge(outcome: Outcome, part: FeedbackPart, quality_rule: str) -> bool | None:
    """Fold one part into the outcome; returns whether its quality (if any) was applied.

    Quality: a source of higher precedence (user > judge > system) replaces a lower one and is never
    replaced by it; between qualities of the same source, with rule "first" the first stands, with
    "last" each new one replaces it. Other fields: the latest value reported wins (a client may
    correct its own measurement).
    """
    applied = None
    if part.quality is not None:
        if outcome.quality is None:
            applied = True
        else:
            mine, theirs = _rank(part.source), _rank(outcome.quality_source)
            applied = mine > theirs or (mine == theirs and quality_rule == "last")
        if applied:
            outcome.quality = part.quality
            outcome.quality_source = part.source
    for name in ("latency_ms", "cost_usd", "input_tokens", "output_tokens", "error"):
        value = getattr(part, name)
        if value is not None:
            setattr(outcome, name, value)
    outcome.parts += 1
    if part.source not in outcome.sources:
        outcome.sources.append(part.source)
    return applied


# Whose word on quality counts most: the user saw the answer, the judge only guesses.
QUALITY_PRECEDENCE = ("system", "judge", "user")


def _rank(source: str | None) -> int:
    return QUALITY_PRECEDENCE.index(source) if source in QUALITY_PRECEDENCE else -1
