"""User signals -> one quality in [0, 1] for a routed answer. Pure.

A quality is what the reward formula (`banditroute.reward`) starts from: 1 is an answer the user
was fully happy with, 0 one that failed them. The mapping:

==============  ===============  ==================================================================
signal          quality          why
==============  ===============  ==================================================================
thumbs up       1.0              an explicit verdict: the answer served the user
thumbs down     0.0              an explicit verdict: it did not
rating v        (v-lo)/(hi-lo)   linear on the scale [lo, hi]: 1..5 stars give 0, .25, .5, .75, 1
edit            1 - d/L          d: Levenshtein distance from the answer to the user's correction,
                                 L: the longer text; no edit -> 1, full rewrite -> about 0
copy            0.7              weak positive: the user took the answer away, maybe to fix it
regenerate      0.3              weak negative: the user wanted another answer, maybe a variant
escalation      0.0              strong negative: the user gave up and asked a human
==============  ===============  ==================================================================

Several signals for the same answer are combined by `combine_signals`:

1. Explicit verdicts (thumbs, rating) win over implicit behaviour: the user told us. Of several,
   the last one wins, since a user who changes a thumbs or a rating corrects the earlier one.
2. Otherwise the strongest implicit evidence wins: escalation > edit > copy = regenerate. An edit
   measures how much was wrong; copy and regenerate only hint. Signals of equal strength are
   averaged (a copy and a regenerate cancel out to 0.5).
3. No signals: None, so the caller can fall back to a judge or a default.

The user's quality and an LLM judge's quality for the same event are combined where all feedback
is joined, in `banditroute.joiner.merge`: the user wins whenever present. The judge is a proxy for
the user's satisfaction, with its own biases (length, style, its own model family); the user's
signal is the thing itself, so averaging would only pull a direct measurement towards a noisier
estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

THUMBS_UP_QUALITY = 1.0
THUMBS_DOWN_QUALITY = 0.0
COPY_QUALITY = 0.7
REGENERATE_QUALITY = 0.3
ESCALATION_QUALITY = 0.0
# Beyond this many changed characters per side the edit distance is estimated from a prefix of the
# changed part, so a pasted 1 MB correction costs milliseconds, not minutes.
MAX_EDIT_CHARS = 5_000


class SignalKind(StrEnum):
    THUMBS = "thumbs"
    RATING = "rating"
    EDIT = "edit"
    COPY = "copy"
    REGENERATE = "regenerate"
    ESCALATION = "escalation"


EXPLICIT_KINDS = frozenset({SignalKind.THUMBS, SignalKind.RATING})
# How much an implicit signal tells about the answer; the strongest present decides.
IMPLICIT_STRENGTH = {
    SignalKind.ESCALATION: 3,
    SignalKind.EDIT: 2,
    SignalKind.COPY: 1,
    SignalKind.REGENERATE: 1,
}


def _check_unit(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a finite number in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Signal:
    """One user signal about one answer, already mapped to its quality.

    >>> Signal.rating(4).quality
    0.75
    """

    kind: SignalKind
    quality: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SignalKind(self.kind))
        object.__setattr__(self, "quality", _check_unit(f"{self.kind} quality", self.quality))

    @property
    def explicit(self) -> bool:
        return self.kind in EXPLICIT_KINDS

    @classmethod
    def thumbs(cls, up: bool) -> Signal:
        return cls(SignalKind.THUMBS, quality_from_thumbs(up))

    @classmethod
    def rating(cls, value: float, scale: int = 5, lowest: int = 1) -> Signal:
        return cls(SignalKind.RATING, quality_from_rating(value, scale, lowest))

    @classmethod
    def edit(cls, original: str, corrected: str) -> Signal:
        return cls(SignalKind.EDIT, quality_from_edit(original, corrected))

    @classmethod
    def copy(cls) -> Signal:
        return cls(SignalKind.COPY, COPY_QUALITY)

    @classmethod
    def regenerate(cls) -> Signal:
        return cls(SignalKind.REGENERATE, REGENERATE_QUALITY)

    @classmethod
    def escalation(cls) -> Signal:
        return cls(SignalKind.ESCALATION, ESCALATION_QUALITY)


def quality_from_thumbs(up: bool) -> float:
    if not isinstance(up, bool):
        raise ValueError(f"thumbs must be true (up) or false (down), got {up!r}")
    return THUMBS_UP_QUALITY if up else THUMBS_DOWN_QUALITY


def quality_from_rating(value: object, scale: int = 5, lowest: int = 1) -> float:
    """A rating on the scale [lowest, scale] mapped linearly to [0, 1]; half stars are fine.

    >>> quality_from_rating(7, scale=10, lowest=0)
    0.7
    """
    for name, number in (("scale", scale), ("lowest", lowest)):
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"rating {name} must be an integer, got {number!r}")
    if scale <= lowest:
        raise ValueError(f"rating scale must be above its lowest value, got [{lowest}, {scale}]")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"rating must be a finite number, got {value!r}")
    if not lowest <= value <= scale:
        raise ValueError(f"rating {value!r} is outside the scale [{lowest}, {scale}]")
    return (value - lowest) / (scale - lowest)


def quality_from_edit(original: object, corrected: object) -> float:
    """1 minus the normalised Levenshtein distance between the answer and the user's correction.

    Normalised by the longer text so the result stays in [0, 1] whether the user cut or added.

    >>> quality_from_edit("The capital is Paris.", "The capital is Paris.")
    1.0
    """
    if not isinstance(original, str) or not isinstance(corrected, str):
        raise ValueError("edit signals need the original answer and the correction as text")
    longest = max(len(original), len(corrected))
    if longest == 0:
        return 1.0
    return 1.0 - min(1.0, edit_distance(original, corrected) / longest)


def edit_distance(a: str, b: str) -> float:
    """Levenshtein distance; estimated when the changed parts exceed `MAX_EDIT_CHARS`.

    The common prefix and suffix are cut first (typical corrections touch a few places). Past the
    cap the distance of the capped prefixes of the changed parts is scaled up to their full length.
    """
    prefix = 0
    limit = min(len(a), len(b))
    while prefix < limit and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    a, b = a[prefix : len(a) - suffix], b[prefix : len(b) - suffix]
    full = max(len(a), len(b))
    if full <= MAX_EDIT_CHARS:
        return float(_levenshtein(a, b))
    a, b = a[:MAX_EDIT_CHARS], b[:MAX_EDIT_CHARS]
    return _levenshtein(a, b) * full / max(len(a), len(b))


def _levenshtein(a: str, b: str) -> int:
    """Exact Levenshtein distance, bit-parallel (Myers 1999, in Hyyrö's 2003 formulation).

    One column of the dynamic-programming table is kept as two bit vectors of vertical +1/-1
    steps, so each character of `b` costs a handful of big-integer operations instead of a loop
    over `a`: O(len(b) * len(a) / 64) machine steps, linear memory.
    """
    if len(a) > len(b):
        a, b = b, a  # the shorter text is the bit pattern
    if not a:
        return len(b)
    length = len(a)
    mask = (1 << length) - 1
    top = 1 << (length - 1)
    matches: dict[str, int] = {}
    for i, char in enumerate(a):
        matches[char] = matches.get(char, 0) | (1 << i)
    plus, minus, distance = mask, 0, length
    for char in b:
        eq = matches.get(char, 0)
        diagonal_zero = ((((eq & plus) + plus) ^ plus) | eq | minus) & mask
        h_plus = (minus | ~(diagonal_zero | plus)) & mask
        h_minus = diagonal_zero & plus
        if h_plus & top:
            distance += 1
        elif h_minus & top:
            distance -= 1
        h_plus = ((h_plus << 1) | 1) & mask
        minus = diagonal_zero & h_plus
        plus = ((h_minus << 1) | ~(diagonal_zero | h_plus)) & mask
    return distance


def combine_signals(signals: Sequence[Signal]) -> float | None:
    """One quality from all signals about an answer, in arrival order; rules in the module doc."""
    if not signals:
        return None
    for signal in signals:
        if not isinstance(signal, Signal):
            raise ValueError(f"combine_signals takes Signal objects, got {signal!r}")
    explicit = [s for s in signals if s.explicit]
    if explicit:
        return explicit[-1].quality
    strongest = max(IMPLICIT_STRENGTH[s.kind] for s in signals)
    qualities = [s.quality for s in signals if IMPLICIT_STRENGTH[s.kind] == strongest]
    return sum(qualities) / len(qualities)
