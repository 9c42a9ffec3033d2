from __future__ import annotations

import math
import random

import pytest

from feedback.signals import (
    MAX_EDIT_CHARS,
    Signal,
    SignalKind,
    combine_signals,
    edit_distance,
    quality_from_edit,
    quality_from_rating,
    quality_from_thumbs,
)


def reference_levenshtein(a: str, b: str) -> int:
    """The textbook two-row dynamic programme: the specification the fast version must meet."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


@pytest.mark.parametrize(("up", "quality"), [(True, 1.0), (False, 0.0)])
def test_thumbs(up: bool, quality: float) -> None:
    assert quality_from_thumbs(up) == quality
    assert Signal.thumbs(up) == Signal(SignalKind.THUMBS, quality)


@pytest.mark.parametrize(
    ("value", "scale", "lowest", "quality"),
    [
        (1, 5, 1, 0.0),
        (2, 5, 1, 0.25),
        (3, 5, 1, 0.5),
        (4.5, 5, 1, 0.875),
        (5, 5, 1, 1.0),
        (0, 10, 0, 0.0),
        (7, 10, 0, 0.7),
        (10, 10, 1, 1.0),
        (2, 3, 1, 0.5),
    ],
)
def test_rating_is_linear_on_its_scale(value: float, scale: int, lowest: int, quality: float) -> None:
    assert quality_from_rating(value, scale, lowest) == pytest.approx(quality)


@pytest.mark.parametrize(
    ("original", "corrected", "distance"),
    [
        ("", "", 0),
        ("abc", "", 3),
        ("", "abc", 3),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("The capital is Paris.", "The capital is Paris.", 0),
        ("The capital is Lyon.", "The capital is Paris.", 5),
        ("Grüße aus Köln", "Grüsse aus Köln", 2),
    ],
)
def test_edit_distance(original: str, corrected: str, distance: int) -> None:
    assert edit_distance(original, corrected) == distance
    assert edit_distance(corrected, original) == distance


def test_bit_parallel_levenshtein_matches_the_two_row_programme() -> None:
    rng = random.Random(11)
    for _ in range(500):
        a = "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice("abcd ") for _ in range(rng.randint(0, 90)))
        assert edit_distance(a, b) == reference_levenshtein(a, b), (a, b)


@pytest.mark.parametrize(
    ("original", "corrected", "quality"),
    [
        ("Use a list comprehension.", "Use a list comprehension.", 1.0),
        ("Use a list comprehension.", "Use a set comprehension.", 1 - 3 / 25),  # list -> set: 3 edits
        ("abcd", "abcx", 0.75),
        ("short", "", 0.0),
        ("", "", 1.0),
        ("aaaa", "bbbbbbbb", 0.0),
    ],
)
def test_edit_quality(original: str, corrected: str, quality: float) -> None:
    assert quality_from_edit(original, corrected) == pytest.approx(quality)
    assert Signal.edit(original, corrected).quality == pytest.approx(quality)


def test_light_edit_scores_higher_than_heavy_rewrite() -> None:
    answer = "To reverse a list in Python, call lst.reverse() or use slicing: lst[::-1]."
    typo_fix = answer.replace("slicing", "slicng")
    rewrite = "Use reversed(lst) when you only need to iterate; it does not copy the list."
    assert quality_from_edit(answer, typo_fix) > 0.95 > 0.5 > quality_from_edit(answer, rewrite)


def test_huge_edits_are_bounded() -> None:
    rng = random.Random(3)
    a = "".join(rng.choice("abcdefgh ") for _ in range(200_000))
    b = "".join(rng.choice("abcdefgh ") for _ in range(200_000))
    quality = quality_from_edit(a, b)
    assert 0.0 <= quality < 0.6
    # A local fix inside a long answer is exact: the common prefix and suffix are cut first.
    long_answer = "x" * (10 * MAX_EDIT_CHARS)
    fixed = long_answer[:1000] + "y" + long_answer[1001:]
    assert edit_distance(long_answer, fixed) == 1


@pytest.mark.parametrize(
    ("received", "quality"),
    [
        ([], None),
        ([Signal.copy()], 0.7),
        ([Signal.regenerate()], 0.3),
        ([Signal.escalation()], 0.0),
        ([Signal.copy(), Signal.regenerate()], 0.5),  # equal strength: they cancel out
        ([Signal.copy(), Signal.edit("abcd", "abcx")], 0.75),  # an edit measures, a copy hints
        ([Signal.edit("abcd", "abcd"), Signal.escalation()], 0.0),  # escalation is strongest
        ([Signal.escalation(), Signal.thumbs(True)], 1.0),  # explicit beats implicit
        ([Signal.thumbs(False), Signal.copy(), Signal.rating(4)], 0.75),  # the last explicit wins
        ([Signal.rating(5), Signal.thumbs(False)], 0.0),
        ([Signal(SignalKind.COPY, 0.9), Signal(SignalKind.REGENERATE, 0.2)], 0.55),
    ],
)
def test_combine_signals(received: list[Signal], quality: float | None) -> None:
    assert combine_signals(received) == (None if quality is None else pytest.approx(quality))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: quality_from_thumbs(1), r"thumbs must be true \(up\) or false \(down\)"),  # type: ignore[arg-type]
        (lambda: quality_from_thumbs(None), r"thumbs must be"),  # type: ignore[arg-type]
        (lambda: quality_from_rating(0), r"outside the scale \[1, 5\]"),
        (lambda: quality_from_rating(6), r"outside the scale \[1, 5\]"),
        (lambda: quality_from_rating(11, scale=10, lowest=0), r"outside the scale \[0, 10\]"),
        (lambda: quality_from_rating(math.nan), r"rating must be a finite number"),
        (lambda: quality_from_rating(math.inf), r"rating must be a finite number"),
        (lambda: quality_from_rating(True), r"rating must be a finite number"),
        (lambda: quality_from_rating("4"), r"rating must be a finite number"),  # type: ignore[arg-type]
        (lambda: quality_from_rating(3, scale=1), r"scale must be above its lowest value"),
        (lambda: quality_from_rating(3, scale=5.5), r"scale must be an integer"),  # type: ignore[arg-type]
        (lambda: quality_from_edit("a", None), r"original answer and the correction as text"),  # type: ignore[arg-type]
        (lambda: Signal(SignalKind.COPY, 1.5), r"copy quality must be a finite number in \[0, 1\]"),
        (lambda: Signal(SignalKind.EDIT, math.nan), r"edit quality must be a finite number"),
        (lambda: Signal("stars", 0.5), r"'stars' is not a valid SignalKind"),  # type: ignore[arg-type]
        (lambda: combine_signals([0.5]), r"takes Signal objects"),  # type: ignore[list-item]
    ],
)
def test_invalid_input_is_rejected_clearly(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
