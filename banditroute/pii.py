"""Detection of obvious personal or regulated data in a request text. Pure and fast.

The router's data-policy rule sends a request that contains PII only to models allowed to see
sensitive data, so a miss leaks data and a false alarm narrows the choice of models. This module
aims at the obvious cases with few false alarms; it is not a data-loss-prevention engine.

Each kind is a precompiled candidate pattern plus a validator in Python:

=============  ==================================================================================
kind           what counts
=============  ==================================================================================
email          local@domain.tld; not reserved example domains (RFC 2606), image names such as
               ``icon@2x.png`` or ``git@host`` SSH remotes
phone          ``+CC`` international numbers with 8-15 digits; North American numbers
               ``(415) 555-2671`` / ``415-555-2671`` / ``415.555.2671``; trunk-prefixed national
               numbers ``020 7946 0958`` / ``06 12 34 56 78`` with one consistent separator and
               10-12 digits. Bare digit runs, dates, versions and prices do not match.
card           13-19 digits, one consistent separator (space or dash) between groups of 3-6,
               issuer digit 2-6, Luhn checksum
iban           country code with its registered length, groups of four or compact, mod-97 == 1
us_ssn         AAA-GG-SSSS without area 000/666/9xx, group 00 or serial 0000
ip_address     public (globally routable) IPv4 and IPv6 addresses; private, loopback and
               documentation ranges identify no one
=============  ==================================================================================

Every pattern starts with a lookbehind that only lets a candidate begin at the start of a token
and has bounded, unambiguous repetition, so scanning is linear in the text length: no input can
trigger catastrophic backtracking.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

KINDS = frozenset({"email", "phone", "card", "iban", "us_ssn", "ip_address"})

_HAS_DIGIT = re.compile(r"\d")

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@((?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24})"
    r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
)
# Reserved for documentation (RFC 2606, RFC 6761): addresses there belong to no one.
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net")
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost", "local"})
# Retina asset names (`logo@2x.png`) have the shape of an address.
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff"})

_PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])\+[1-9][\d ().-]{6,22}\d(?!\d)")
_PHONE_NANP = re.compile(
    r"(?<![\w+.-])(?:1[ .-])?"
    r"(?:\([2-9]\d\d\) ?[2-9]\d\d[ .-]|[2-9]\d\d(?P<sep>[.-])[2-9]\d\d(?P=sep))\d{4}"
    r"(?![\w-]|\.\d)"
)
_PHONE_TRUNK = re.compile(
    r"(?<![\w+.-])(?<!\d[ .-])0\d{1,4}(?P<sep>[ .-])\d{2,4}(?:(?P=sep)\d{2,4}){0,4}(?![\w-]|[ .]\d)"
)
_E164_DIGITS = (8, 15)
_TRUNK_DIGITS = (10, 12)
_REPEATED_SEPARATOR = re.compile(r"[ .-]{2}")

_CARD = re.compile(r"(?<![\w.-])(?<!\d )[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-]|[ .]\d)")
_CARD_GROUP_LENGTHS = (3, 6)

_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?|[A-Z0-9]{11,30})(?![A-Za-z0-9])",
    re.IGNORECASE,
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

_SSN = re.compile(r"(?<![\w-])(?!000|666|9)\d{3}-(?!00)\d\d-(?!0000)\d{4}(?![\w-]|\.\d)")

_IPV4_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}(?![\w]|\.\d)")
# Global unicast IPv6 lives in 2000::/3, so a candidate starts with hex digit 2 or 3.
_IPV6 = re.compile(r"(?<![\w:.])[23][0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


def _email(match: re.Match[str]) -> bool:
    local, _, _ = match.group().partition("@")
    domain = match.group(1).lower()
    tld = domain.rsplit(".", 1)[-1]
    if local.startswith(".") or local.endswith(".") or ".." in local or local == "git":
        return False
    if tld in _RESERVED_TLDS or tld in _FILE_EXTENSIONS:
        return False
    return not any(domain == d or domain.endswith("." + d) for d in _RESERVED_DOMAINS)


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


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
        value = ord(char) - 48
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


def _iban(match: re.Match[str]) -> bool:
    compact = match.group().replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    # Letters count as 10..35: int(c, 36) maps digits to themselves and A..Z to 10..35.
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _shape_suffices(match: re.Match[str]) -> bool:
    """For patterns that check everything themselves (SSN ranges, North American digit rules)."""
    return True


def _ipv4(match: re.Match[str]) -> bool:
    return ipaddress.IPv4Address(match.group()).is_global


def _ipv6(match: re.Match[str]) -> bool:
    candidate = match.group()
    if "::" not in candidate and candidate.count(":") != 7:
        return False  # times such as 23:59:59 have too few groups to be an address
    try:
        return ipaddress.IPv6Address(candidate).is_global
    except ValueError:
        return False


_Validator = Callable[[re.Match[str]], bool]

# Cheap patterns first, so `contains_pii` usually stops early. The second field says what the text
# must contain for the pattern to have a chance: "@" for addresses, a digit for everything else.
_DETECTORS: tuple[tuple[str, str, re.Pattern[str], _Validator], ...] = (
    ("email", "@", _EMAIL, _email),
    ("us_ssn", "digit", _SSN, _shape_suffices),
    ("phone", "digit", _PHONE_INTERNATIONAL, _phone_international),
    ("phone", "digit", _PHONE_NANP, _shape_suffices),
    ("phone", "digit", _PHONE_TRUNK, _phone_trunk),
    ("card", "digit", _CARD, _card),
    ("iban", "digit", _IBAN, _iban),
    ("ip_address", "digit", _IPV4, _ipv4),
    ("ip_address", "digit", _IPV6, _ipv6),
)


def _hits(text: str) -> Iterator[str]:
    """The kinds found, each once, lazily."""
    has_at = "@" in text
    has_digit = _HAS_DIGIT.search(text) is not None
    found: set[str] = set()
    for kind, needs, pattern, valid in _DETECTORS:
        if kind in found or not (has_at if needs == "@" else has_digit):
            continue
        if any(valid(match) for match in pattern.finditer(text)):
            found.add(kind)
            yield kind


def detect(text: str) -> frozenset[str]:
    """The kinds of PII in `text`, a subset of `KINDS`."""
    return frozenset(_hits(text))


def contains_pii(text: str) -> bool:
    """Whether `text` holds any PII; stops at the first hit, for the router's hot path."""
    return next(_hits(text), None) is not None
