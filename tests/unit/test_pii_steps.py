"""The PII scan in bounded steps (issue 15, defect 2): the same answer as one pass, in pauses."""

from __future__ import annotations

import re._constants as sre_constants
import re._parser as sre_parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banditroute import pii

PATTERNS = [
    pii._EMAIL, pii._SSN, pii._PHONE_INTERNATIONAL, pii._PHONE_NANP, pii._PHONE_TRUNK, pii._CARD,
    pii._IPV4, pii._IBAN, pii._IPV6,
]  # fmt: skip
TEXT = st.text(alphabet="0123456789 .-()+:@abAZDE\n", max_size=400)


@settings(max_examples=300, deadline=None)
@given(text=TEXT, start=st.integers(0, 50))
def test_stepped_search_finds_exactly_what_finditer_finds(text: str, start: int) -> None:
    for pattern in PATTERNS:
        expected = [m.span() for m in pattern.finditer(text, start)]
        found = [m.span() for m in pii._finditer(pattern, text, start) if m is not None]
        assert found == expected, pattern.pattern


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789 .-()a\n", max_size=300))
def test_clusters_in_steps_are_exactly_the_clusters_of_one_pass(text: str) -> None:
    expected = [m.span() for m in pii._CLUSTER.finditer(text)]
    assert [span for span in pii._clusters(text) if span is not None] == expected


@pytest.fixture
def tiny_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps of 3 positions: every match crosses step boundaries in a short text."""
    monkeypatch.setattr(pii, "STEP_CHARS", 3)


SAMPLES = [
    "call +44 20 7946 0958 or mail jane.roe@corp.de",
    "ssn 123-45-6789, card 4111 1111 1111 1111",
    "iban GB82 WEST 1234 5698 7654 32 and 8.8.8.8",
    "0 12 0 12 0 12 0 12 0 12 0 12 0 12 0 12 0 12",
    "v1.2.3.4 on 2024-01-02 cost 12.50 at 23:59:59",
    "2001:4860:4860::8888 and (415) 555-2671",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_detect_steps_ends_with_what_detect_finds_and_pauses_on_the_way(tiny_steps: None, text: str) -> None:
    steps = list(pii.detect_steps(text))
    assert steps[-1] == pii.detect(text)
    assert all(step is None for step in steps[:-1]) and len(steps) >= 2


def test_a_long_numeric_query_is_scanned_in_many_short_steps() -> None:
    text = ("0 12 " * 200_000)[:1_000_000]
    steps = list(pii.detect_steps(text))
    assert steps[-1] == frozenset()
    # Each pattern that runs over the one 1M-character cluster pauses every STEP_CHARS positions.
    assert len(steps) >= 3 * len(text) // pii.STEP_CHARS


def test_no_pattern_reaches_beyond_the_step_margin() -> None:
    """`_REACH` bounds how far any pattern looks from a match's start: checked on the patterns'
    longest possible matches (bounded repetition only)."""
    longest = {
        pii._EMAIL: "@" + ("a" * 63 + ".") * 8 + "a" * 24,
        pii._IBAN: "GB82" + " ABCD" * 7 + " ABCD",
        pii._PHONE_INTERNATIONAL: "+1" + "2" * 22 + "3",
    }
    for pattern, text in longest.items():
        match = pattern.search(text + "  ")
        assert match is not None and match.end() + 2 <= pii._REACH
    assert not any(_unbounded(sre_parse.parse(p.pattern)) for p in PATTERNS)
    assert _unbounded(sre_parse.parse(pii._CLUSTER.pattern))  # the check sees an unbounded one


def _unbounded(parsed: sre_parse.SubPattern) -> bool:
    """Whether a parsed pattern repeats anything without an upper bound (`*`, `+`, `{n,}`)."""
    for op, arg in parsed:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            subpatterns, bounded = [arg[2]], arg[1] != sre_constants.MAXREPEAT
        elif op == sre_constants.SUBPATTERN:
            subpatterns, bounded = [arg[-1]], True
        elif op == sre_constants.BRANCH:
            subpatterns, bounded = list(arg[1]), True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            subpatterns, bounded = [arg[1]], True
        else:
            continue
        if not bounded or any(_unbounded(sub) for sub in subpatterns):
            return True
    return False
