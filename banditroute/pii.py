"""Detection of obvious personal or regulated data in a request text. Pure and fast.

The router's data-policy rule sends a request that contains PII only to models allowed to see
sensitive data, so a miss leaks data and a false alarm needlessly narrows the choice of models.
This module aims at the obvious cases with few false alarms; it is not a data-loss-prevention
engine and does not look for names or addresses.

=============  ==================================================================================
kind           what counts
=============  ==================================================================================
email          local@domain.tld, except reserved example domains (RFC 2606), retina image names
               such as ``icon@2x.png`` and ``git@host`` SSH remotes
phone          ``+CC`` international numbers with 8-15 digits; North American numbers
               ``(415) 555-2671``, ``415-555-2671``, ``415.555.2671`` (area and exchange
               codes start with 2-9);
               trunk-prefixed national numbers ``020 7946 0958``, ``06 12 34 56 78``,
               ``030 12345678`` with one consistent separator and 10-12 digits. Bare digit
               runs, dates, versions and prices do not count.
card           13-19 digits, issuer digit 2-6, groups of 3-6 digits with one consistent separator
               (space or dash) or none, and a valid Luhn checksum
iban           country code, the registered length for that country, groups of four or compact,
               upper case, and ISO 7064 mod-97 check == 1
us_ssn         AAA-GG-SSSS without area 000, 666 or 9xx, group 00 or serial 0000
ip_address     globally routable IPv4 and IPv6 addresses; private, loopback and documentation
               ranges identify no one
=============  ==================================================================================

Speed: a 100 KB prompt must cost the router only milliseconds, and Python's regex engine pays for
every position at which it tries a pattern. So each pass over the whole text is cheap and the
expensive patterns run on small windows: email and international phone patterns start with a
literal ("@", "+") the engine finds with a fast string search; SSNs, national phones, cards and
IPv4 addresses are looked for only inside clusters of digits and separators that one pass finds
and cheap counts filter; IBAN takes one pass, IPv6 one when the text has enough colons. Every
pattern has bounded, unambiguous repetition, so no input causes catastrophic backtracking.

Bounded steps: the cost is linear, but a 4M-character prompt of digits and spaces still takes a few
hundred milliseconds. Every pattern therefore runs through `_finditer`, which gives the same matches
as `finditer` in calls that each look at a bounded stretch of text, and `detect_steps` hands control
back to its caller after each stretch: the service scans a long query between other requests
instead of stalling them. `detect` is the same scan run straight through, so both give one answer.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Generator, Iterator
from typing import Any, NamedTuple

KINDS = frozenset({"email", "phone", "card", "iban", "us_ssn", "ip_address"})

# The domain part; the local part is checked backwards from the "@" by `_LOCAL_PART`.
# Internationalised addresses (RFC 6531) may use any letters, hence \w rather than A-Z.
_EMAIL = re.compile(r"@((?:[\w-]{1,63}\.){1,8}[A-Za-z]{2,24})(?![\w-]|\.\w)")
_LOCAL_PART = re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}\Z")
_LOCAL_PART_MAX = 64
# Reserved for documentation (RFC 2606, RFC 6761): addresses there belong to no one.
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net")
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost", "local"})
# Retina asset names (`logo@2x.png`) have the shape of an address.
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff"})

# SSNs, national phone numbers, cards and IPv4 addresses live in runs of digits and separators
# like these, starting with a digit or "(" and ending with a digit or ")".
_CLUSTER = re.compile(r"[0-9(][0-9 ().-]{5,}[0-9)]")
# Its parts, for finding clusters in bounded steps (`_clusters`).
_CLUSTER_CHAR = re.compile(r"[0-9 ().-]")
_NOT_CLUSTER_CHAR = re.compile(r"[^0-9 ().-]")
_CLUSTER_START = re.compile(r"[0-9(]")
_LAST_CLUSTER_END = re.compile(r"(?s:.*)[0-9)]")
_LAST_NOT_CLUSTER_CHAR = re.compile(r"(?s:.*)[^0-9 ().-]")
_CLUSTER_MIN = 7
# The numeric patterns look at most this many characters past a candidate.
_LOOKAHEAD = 2
_DIGITS = "0123456789"

_SSN = re.compile(r"(?<![\w-])(?!000|666|9)\d{3}-(?!00)\d\d-(?!0000)\d{4}(?![\w-]|\.\d)")
# Starts with the literal "+", which the engine finds fast, then checks what comes before.
_PHONE_INTERNATIONAL = re.compile(r"\+(?<![\w+]\+)[1-9][\d ().-]{6,22}\d(?!\d)")
_PHONE_NANP = re.compile(
    r"(?<![\w+.-])(?:1[ .-])?"
    r"(?:\([2-9]\d\d\) ?[2-9]\d\d[ .-]|[2-9]\d\d(?P<nanp_sep>[.-])[2-9]\d\d(?P=nanp_sep))\d{4}"
    r"(?![\w-]|\.\d)"
)
_PHONE_TRUNK = re.compile(
    r"(?<![\w+.-])(?<!\d[ .-])0\d{1,4}(?P<trunk_sep>[ .-])\d{2,8}(?:(?P=trunk_sep)\d{2,4}){0,4}"
    r"(?![\w-]|[ .]\d)"
)
_E164_DIGITS = (8, 15)
_TRUNK_DIGITS = (10, 12)
_REPEATED_SEPARATOR = re.compile(r"[ .-]{2}")
_CARD = re.compile(r"(?<![\w.-])(?<!\d )[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-]|[ .]\d)")
_CARD_GROUP_LENGTHS = (3, 6)
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?!\w|\.\d)")

# The first letter comes before the lookbehind so the engine can skip to candidate letters fast.
_IBAN = re.compile(
    r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d\d(?:(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?|[A-Z0-9]{11,30})"
    r"(?![A-Za-z0-9])"
)
# IBAN length by country, from the SWIFT IBAN registry: it rejects most lookalike tokens.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22,
    "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23,
    "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31,
    "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

# Global unicast IPv6 is 2000::/3, so a candidate starts with hex digit 2 or 3.
_IPV6 = re.compile(r"[23](?<![\w:.][23])[0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_IPV6_FULL_COLONS = 7

# A pattern looks at at most `_REACH` characters from where a match attempt starts (the longest
# email domain is 1 + 8 * 64 + 24, plus two of lookahead; every other pattern reaches under 50), so
# a search over [pos, end + _REACH) finds exactly the matches `finditer` would that start before
# `end`. One search call covers `STEP_CHARS` starting positions: about a millisecond of work.
_REACH = 1024
STEP_CHARS = 16_384
# Matches validated (in Python) between two pauses at most.
_MATCHES_PER_STEP = 256
# Longer clusters skip the card filter, whose split costs time and memory per dot.
_FILTERED_CLUSTER_MAX = 4096


def _email(match: re.Match[str]) -> bool:
    at = match.start()
    local = _LOCAL_PART.search(match.string, max(0, at - _LOCAL_PART_MAX), at)
    if local is None:
        return False
    name = local.group()
    if name.startswith(".") or name.endswith(".") or ".." in name or name == "git":
        return False
    domain = match.group(1).lower()
    tld = domain.rsplit(".", 1)[-1]
    if tld in _RESERVED_TLDS or tld in _FILE_EXTENSIONS:
        return False
    return not any(domain == d or domain.endswith("." + d) for d in _RESERVED_DOMAINS)


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _shape_suffices(match: re.Match[str]) -> bool:
    """For patterns that check everything themselves (SSN ranges, North American digit rules)."""
    return True


def _phone_international(match: re.Match[str]) -> bool:
    number = match.group()
    if _REPEATED_SEPARATOR.search(number) or number.count("(") != number.count(")") or number.count("(") > 1:
        return False
    return _E164_DIGITS[0] <= _digit_count(number) <= _E164_DIGITS[1]


def _phone_trunk(match: re.Match[str]) -> bool:
    return _TRUNK_DIGITS[0] <= _digit_count(match.group()) <= _TRUNK_DIGITS[1]


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    number = match.group()
    separators = {c for c in number if not c.isdigit()}
    if len(separators) > 1:
        return False
    if separators:
        groups = number.split(separators.pop())
        if not all(_CARD_GROUP_LENGTHS[0] <= len(g) <= _CARD_GROUP_LENGTHS[1] for g in groups):
            return False
    return _luhn(number.replace(" ", "").replace("-", ""))


def _ipv4(match: re.Match[str]) -> bool:
    try:
        return ipaddress.IPv4Address(match.group()).is_global
    except ValueError:
        return False  # an octet above 255


def _card_possible(text: str, start: int, stop: int) -> bool:
    """Thirteen characters without a dot in a row (rows of decimals have none). Assumed on a long
    cluster, where splitting it would cost more than running the card pattern."""
    return stop - start > _FILTERED_CLUSTER_MAX or any(len(part) >= 13 for part in text[start:stop].split("."))


class _Clustered(NamedTuple):
    """A kind found inside digit clusters, with a cheap test that rules out most clusters (dates,
    versions, rows of decimals) before its pattern runs."""

    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[re.Match[str]], bool]
    shortest: int
    possible: Callable[[str, int, int], bool]  # (text, cluster start, cluster stop): C-speed only


_CLUSTERED = (
    _Clustered("us_ssn", _SSN, _shape_suffices, len("123-45-6789"), lambda t, a, b: t.count("-", a, b) >= 2),
    _Clustered("phone", _PHONE_NANP, _shape_suffices, len("415-555-2671"), lambda t, a, b: True),
    _Clustered("phone", _PHONE_TRUNK, _phone_trunk, len("020 7946 09"), lambda t, a, b: t.find("0", a, b) >= 0),
    _Clustered("card", _CARD, _card, len("4222222222222"), _card_possible),
    _Clustered("ip_address", _IPV4, _ipv4, len("8.8.8.8"), lambda t, a, b: t.count(".", a, b) >= 3),
)
_CLUSTERED_KINDS = frozenset(c.kind for c in _CLUSTERED)
_SHORTEST_NON_IP = min(c.shortest for c in _CLUSTERED if c.kind != "ip_address")
# On a short cluster one search finds whether it holds a candidate of any kind: most hold none,
# and one call costs less than one per kind. On long clusters (rows of numbers) the alternation
# is slower than the gated patterns one by one.
_ANY_CLUSTERED = re.compile("|".join(f"(?:{c.pattern.pattern})" for c in _CLUSTERED))
_SHORT_CLUSTER = 40


def _iban(match: re.Match[str]) -> bool:
    compact = match.group().replace(" ", "")
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    # Base 36 maps digits to themselves and A..Z to 10..35, the values ISO 13616 prescribes.
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ipv6(match: re.Match[str]) -> bool:
    candidate = match.group()
    if "::" not in candidate and candidate.count(":") != _IPV6_FULL_COLONS:
        return False  # times such as 23:59:59 have too few groups to be an address
    try:
        return ipaddress.IPv6Address(candidate).is_global
    except ValueError:
        return False


def _finditer(pattern: re.Pattern[str], text: str, start: int = 0, stop: int | None = None) -> Iterator[Any]:
    """`pattern.finditer(text, start, stop)` (none of the patterns matches the empty string), in
    search calls that each cover at most `STEP_CHARS` starting positions; `None` between calls and after
    every `_MATCHES_PER_STEP` matches: a point where the caller may pause."""
    end = len(text) if stop is None else min(stop, len(text))
    if end - start <= STEP_CHARS:  # one step: the engine's own iteration, without pauses
        return pattern.finditer(text, start, end)
    return _stepped(pattern, text, start, end)


def _stepped(pattern: re.Pattern[str], text: str, start: int, end: int) -> Iterator[Any]:
    pos, since_pause = start, 0
    while pos < end:
        core = min(pos + STEP_CHARS, end)
        match = pattern.search(text, pos, min(core + _REACH, end))
        if match is None or match.start() >= core:
            pos, since_pause = core, 0
            yield None
            continue
        yield match
        pos = max(match.end(), match.start() + 1)
        since_pause += 1
        if since_pause >= _MATCHES_PER_STEP:
            since_pause = 0
            yield None


def _first(
    pattern: re.Pattern[str], valid: Callable[[re.Match[str]], bool], text: str, start: int = 0, stop: int | None = None
) -> Iterator[bool | None]:
    """Pauses (`None`) until a match passes `valid` (then `True`), or the text ends."""
    for match in _finditer(pattern, text, start, stop):
        if match is None:
            yield None
        elif valid(match):
            yield True
            return


def _search(pattern: re.Pattern[str], text: str, start: int, stop: int) -> Generator[None, None, int]:
    """Where a one-character `pattern` first matches in [start, stop) (`stop`: nowhere), a step per
    `STEP_CHARS` characters."""
    pos = start
    while pos < stop:
        window = min(pos + STEP_CHARS, stop)
        match = pattern.search(text, pos, window)
        if match is not None:
            return match.start()
        pos = window
        yield None
    return stop


def _search_back(text: str, start: int, stop: int) -> Generator[None, None, int]:
    """The last cluster end character in [start, stop) (-1: none), backwards a step at a time."""
    high = stop
    while high > start:
        low = max(start, high - STEP_CHARS)
        match = _LAST_CLUSTER_END.match(text, low, high)
        if match is not None:
            return match.end() - 1
        high = low
        yield None
    return -1


def _clusters(text: str) -> Iterator[tuple[int, int] | None]:
    """The spans `_CLUSTER.finditer(text)` gives, in bounded steps (a cluster may be the whole text).

    Each step searches one window. A match whose run of cluster characters ends inside the window is
    exact: every match but the window's last (a later match lies in a later run). A run that reaches
    the window's end is finished in steps of its own: a cluster's characters all belong to the body
    set, so it lies in one maximal run of them, and a run holds at most one, from its first start
    character to its last end character when those are far enough apart (the greedy body takes
    every end character of the run).
    """
    n, pos = len(text), 0
    if n <= STEP_CHARS:  # one step
        for match in _CLUSTER.finditer(text):
            yield match.span()
        return
    while pos < n:
        window = min(pos + STEP_CHARS, n)
        matches = list(_CLUSTER.finditer(text, pos, window))
        run = -1
        if matches:
            last = matches[-1]
            exact = window == n or _NOT_CLUSTER_CHAR.search(text, last.end(), window) is not None
            for match in matches if exact else matches[:-1]:
                yield match.span()
            if not exact:
                run = last.start()
            after = last.end()
        else:
            after = pos
        if run < 0:
            if window == n:
                return
            tail = _LAST_NOT_CLUSTER_CHAR.match(text, after, window)
            run = tail.end() if tail is not None else after
            if run == window:  # the window ends outside any run: nothing reaches past it
                pos = window
                yield None
                continue
        run_end = yield from _search(_NOT_CLUSTER_CHAR, text, run, n)
        first = yield from _search(_CLUSTER_START, text, run, run_end)
        if first < run_end:
            last_end = yield from _search_back(text, first, run_end)
            if last_end - first >= _CLUSTER_MIN - 1:
                yield first, last_end + 1
        pos = run_end
        yield None


def _clustered_hits(text: str) -> Iterator[str | None]:
    found: set[str] = set()
    for cluster in _clusters(text):
        if cluster is None:
            yield None
            continue
        start, end = cluster
        size = end - start
        if size < _SHORTEST_NON_IP and text.count(".", start, end) < 3:
            continue
        stop = end + _LOOKAHEAD
        if size <= _SHORT_CLUSTER and _ANY_CLUSTERED.search(text, start, stop) is None:
            continue
        for candidate in _CLUSTERED:
            if candidate.kind in found or size < candidate.shortest or not candidate.possible(text, start, end):
                continue
            for hit in _first(candidate.pattern, candidate.valid, text, start, stop):
                if hit is None:
                    yield None
                    continue
                found.add(candidate.kind)
                yield candidate.kind
                if found == _CLUSTERED_KINDS:
                    return


def _hits(text: str) -> Iterator[str | None]:
    """The kinds found, cheapest passes first so `contains_pii` can stop early; may repeat a kind.
    `None` marks a pause (see `_finditer`)."""
    if "@" in text:
        for hit in _first(_EMAIL, _email, text):
            yield None if hit is None else "email"
    if not any(digit in text for digit in _DIGITS):
        return
    if "+" in text:
        for hit in _first(_PHONE_INTERNATIONAL, _phone_international, text):
            yield None if hit is None else "phone"
    yield from _clustered_hits(text)
    for hit in _first(_IBAN, _iban, text):
        yield None if hit is None else "iban"
    if "::" in text or text.count(":") >= _IPV6_FULL_COLONS:
        for hit in _first(_IPV6, _ipv6, text):
            yield None if hit is None else "ip_address"


def detect(text: str) -> frozenset[str]:
    """The kinds of PII in `text`, a subset of `KINDS`."""
    return frozenset(kind for kind in _hits(text) if kind is not None)


def detect_steps(text: str) -> Iterator[frozenset[str] | None]:
    """`detect(text)` in steps of bounded work (about a millisecond each): `None` after each step, a
    point where the caller may let other work run, and the kinds found as the last item."""
    found = set()
    for kind in _hits(text):
        if kind is None:
            yield None
        else:
            found.add(kind)
    yield frozenset(found)


def contains_pii(text: str) -> bool:
    """Whether `text` holds any PII; stops at the first hit, for the router's hot path."""
    return any(kind is not None for kind in _hits(text))
