from __future__ import annotations

import random

import pytest

from banditroute.pii import KINDS, contains_pii, detect

POSITIVES = [
    # email
    ("Please reply to jane.doe@gmail.com by Friday.", "email"),
    ("cc: Ops <a.b+alerts@sub.mail.co.uk>", "email"),
    ("contact: J_Smith-1987@uni-bonn.de", "email"),
    # phone
    ("Call me on +44 20 7946 0958 tomorrow", "phone"),
    ("WhatsApp: +33 6 12 34 56 78", "phone"),
    ("mobile +1 (415) 555-2671", "phone"),
    ("E.164 form: +14155552671", "phone"),
    ("Office (415) 555-2671, ext. 12", "phone"),
    ("my cell is 415-555-2671.", "phone"),
    ("fax 415.555.2671", "phone"),
    ("Tel. 020 7946 0958", "phone"),
    ("Appelle-moi au 06 12 34 56 78 ce soir", "phone"),
    ("Festnetz: 030 12345678", "phone"),
    # card (Luhn-valid test numbers)
    ("card 4111 1111 1111 1111 exp 12/27", "card"),
    ("Mastercard 5500-0000-0000-0004", "card"),
    ("amex 3782 822463 10005", "card"),
    ("pan=4012888888881881;", "card"),
    ("discover 6011000990139424", "card"),
    # iban (mod-97 valid)
    ("IBAN: DE89 3704 0044 0532 0130 00", "iban"),
    ("pay to GB29NWBK60161331926819 please", "iban"),
    ("FR14 2004 1010 0505 0001 3M02 606", "iban"),
    ("NL91ABNA0417164300", "iban"),
    # us_ssn
    ("SSN 123-45-6789", "us_ssn"),
    ("ssn: 536-22-1234, DOB 1985", "us_ssn"),
    # ip_address (public)
    ("Failed login from 81.2.69.160 at 10:03", "ip_address"),
    ("dns 8.8.8.8:53", "ip_address"),
    ("client=2a00:1450:4001:82a::200e", "ip_address"),
    ("peer 2606:4700:4700:0000:0000:0000:0000:1111 closed", "ip_address"),
]

HARD_NEGATIVES = [
    # emails that are not anyone's
    "See user@example.com and admin@test.example.org in the docs",
    "git clone git@github.com:org/repo.git",
    "icons: logo@2x.png, logo@3x.jpg",
    "npm install lodash@4.17.21 react@18.2.0",
    "@dataclass\nclass A:\n    @property\n    def x(self): ...",
    # timestamps, dates, durations
    "2024-01-15T10:30:00.123Z INFO worker-3 started",
    "2024-01-15 10:30:00,123 ERROR pool-2-thread-7 retry 3/5",
    "Meeting on 15.01.2024 at 12:30, or 01/02/2024",
    "epoch 1700000000000 ms, ns 1700000000000000000",
    "took 1532 ms (p99 2044 ms) over 86400 s",
    # versions and identifiers
    "Python 3.11.4, numpy 1.26.4, Windows 10.0.19045.3803",
    "upgrade to v1.2.3.4 and 2.14.1-rc.2",
    "request id 550e8400-e29b-41d4-a716-446655440000",
    "commit 3f2a9c41d8e0b7a65f1c2e3d4b5a69788796a5b4",
    "sha256:4111111111111111aa0d1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a",
    "order #4000123412341235 shipped",  # 16 digits, Luhn-invalid
    "tracking 1Z999AA10123456784, invoice INV-2024-000123",
    "ISBN 978-3-16-148410-0",
    # prices and quantities
    "Revenue $1,234,567.89 (+12.5%), costs €1 234 567",
    "Population: 8 000 000 000; area 510 072 000 km2",
    # math and code
    "Solve 3x^2 + 12x - 36 = 0, then 1/(2+3) + 45*67 = 3015.2",
    "x = 10000000 + 20000000; y = a+1234567890",
    "for i in range(1000000):\n    total += i * 3.14159",
    "matrix = [[0.1234, 0.5678], [0.9012, 0.3456]]",
    "0.4806 0.9351 0.0239 0.7234 0.0060 0.4049 0.7642 0.4461",
    # addresses that identify no one
    "bind 0.0.0.0:8080, upstream 127.0.0.1, LAN 192.168.1.10, VPN 10.8.0.1",
    "docs use 203.0.113.7 and 2001:db8::1; std::vector<int> v; a::b",
    "time 23:59:59 and 12:00:00; MAC 00:1A:2B:3C:4D:5E",
    "999.888.777.666 is not an address",
    # SSN-like but invalid ranges, phone-like but not
    "000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000",
    "parts 100-200-3000 and 123-4567-89012",
    "room 0 12 34, code 0123",
    # IBAN-like with a bad checksum or length
    "DE89 3704 0044 0532 0130 01",
    "GB29NWBK6016133192681",
    "XX00 1234 5678 9012 3456",
]


@pytest.mark.parametrize(("text", "kind"), POSITIVES)
def test_detects_obvious_pii(text: str, kind: str) -> None:
    assert kind in detect(text)
    assert contains_pii(text)


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_hard_negatives_are_clean(text: str) -> None:
    assert detect(text) == frozenset()
    assert not contains_pii(text)


def test_several_kinds_in_one_text_and_only_known_kinds() -> None:
    text = (
        "From: jane.doe@gmail.com\nPhone: +1 415 555 2671\nCard: 4111 1111 1111 1111\n"
        "IBAN DE89370400440532013000, SSN 123-45-6789, last login 81.2.69.160"
    )
    assert detect(text) == KINDS


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "4111 1111-1111 1111",  # mixed separators
        "41 1111 1111 1111 11",  # not card grouping
        "1111 1111 1111 1117",  # issuer digit 1 (epoch-ms timestamps look like this)
        "12 4111 1111 1111 1111 34",  # part of a longer row of numbers
    ],
)
def test_card_rules(text: str) -> None:
    assert "card" not in detect(text)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("+49 30 1234567", True),
        ("+1 415--555-2671", False),  # doubled separator
        ("+123 4567", False),  # too few digits for E.164
        ("+1234567890123456", False),  # too many
        ("1 + 2345678", False),  # arithmetic
        ("(415) 123-4567", False),  # exchange cannot start with 1
        ("415-555.2671", False),  # inconsistent separators
        ("4155552671", False),  # bare digit run
    ],
)
def test_phone_rules(text: str, found: bool) -> None:
    assert ("phone" in detect(text)) is found


def test_empty_and_unicode_text() -> None:
    assert detect("") == frozenset()
    assert not contains_pii("Привет, как дела? これは日本語です 🙂")
    assert detect("Écrivez à renée.dupont@orange.fr") == {"email"}


ADVERSARIAL = {
    "digits": "7" * 100_000,
    "spaced digits": "2345 " * 20_000,
    "plus signs": "+1" * 50_000,
    "at signs": "a@b." * 25_000,
    "local part": "a" * 100_000 + "@",
    "colons": "23:" * 33_334,
    "dashes": "123-" * 25_000,
    "zeros": "01 " * 33_334,
    "upper": "AB12 " * 20_000,
    "dots": "1." * 50_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_input_finds_nothing(name: str) -> None:
    # Patterns that backtrack badly would stall here for minutes; speed itself is for `make bench`.
    assert detect(ADVERSARIAL[name]) == frozenset()


def test_long_realistic_prompt_finds_only_a_late_hit() -> None:
    rng = random.Random(7)
    parts = [
        "def area(r: float) -> float:\n    return 3.14159 * r ** 2  # v1.2.3\n",
        "Revenue was $1,234,567.89, up 12.5% from Q3 2023. ",
        "| 2024-03-01 | 0.9134 | 1.2207 | 118.25 | 40213 |\n",
        "2024-01-15 10:30:00,123 ERROR [pool-2] id=550e8400-e29b-41d4-a716-446655440000 took 1532ms\n",
    ]
    text = "".join(rng.choice(parts) for _ in range(2_000))[:100_000]
    assert detect(text) == frozenset()
    assert detect(text + " reach me at jane.doe@gmail.com") == {"email"}
