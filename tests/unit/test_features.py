from __future__ import annotations

import pytest

from banditroute.config import FeaturesConfig
from banditroute.features import estimate_tokens, featurize

CFG = FeaturesConfig()
BIGRAMS = FeaturesConfig(bigrams=True)


def namespaces(text: str) -> dict[str, list[str]]:
    out = {}
    for chunk in text.split("|")[1:]:
        name, *feats = chunk.split()
        out[name] = feats
    return out


@pytest.mark.parametrize(
    ("query", "signal"),
    [
        ("```python\ndef f(x):\n    return x\n```", "code"),
        ("Solve the equation 3x + 5 = 20", "math"),
        ("Steps:\n1. open\n2. close", "list"),
        ("see https://example.org/page", "url"),
        ('{"a": 1, "b": [2]}', "json"),
        ("Is this right?", "ends_q"),
        ("How do magnets work", "q_how"),
        ("Привет, как дела", "script_cyrillic"),
        ("これは日本語です", "script_kana"),
    ],
)
def test_structure_signals(query: str, signal: str) -> None:
    assert signal in namespaces(featurize(query, None, CFG))["x"]


def test_words_bigrams_and_metadata_are_safe_vw_text() -> None:
    text = featurize("Hello World: a|b c", {"user_tier": "pro plan", "task": "x:y|z", "ignored": "v"}, BIGRAMS)
    ns = namespaces(text)
    assert {"hello", "world", "hello_world"} <= set(ns["w"])
    assert ns["u"] == ["user_tier=pro_plan", "task=x_y_z"]
    assert text.count("|") == 3 and ":" not in text


def test_deterministic_bounded_and_deduplicated() -> None:
    long = "spam " * 100_000
    a = featurize(long, None, BIGRAMS)
    assert a == featurize(long, None, BIGRAMS)
    assert len(a) < 2000 and namespaces(a)["w"] == ["spam", "spam_spam"]
    assert "chars19" in namespaces(a)["x"]  # lengths use the whole text


def test_metadata_without_configured_keys_adds_no_namespace() -> None:
    assert "|u" not in featurize("hi", {"other": 1, "capabilities": ["tools"]}, CFG)


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2


def test_digits_fold_in_character_grams_and_number_shapes() -> None:
    cfg = FeaturesConfig(char_ngrams=3, char_window=10, shape_numbers=True)
    a = namespaces(featurize("at 12:30 id 0x1f blk_77", None, cfg))
    b = namespaces(featurize("at 09:45 id 0x2e blk_12", None, cfg))
    assert a["c"] == b["c"] and len(a["c"]) == 8  # 10 characters, 3-grams, ":" made safe
    assert {"#num2", "#hex"} <= set(a["w"]) and a["w"] == b["w"]
    assert "|c" not in featurize("at 12:30", None, CFG)


def test_simhash_buckets_are_shared_by_prompts_sharing_most_words() -> None:
    cfg = FeaturesConfig(simhash_tables=4, simhash_bits=4)
    template = "Answer the following science question with the letter of the right choice: which gas do plants "
    a = [t for t in namespaces(featurize(template + "absorb", None, cfg))["x"] if t.startswith("h")]
    b = [t for t in namespaces(featurize(template + "release", None, cfg))["x"] if t.startswith("h")]
    other = [
        t
        for t in namespaces(featurize("2015-10-18 18:01:47 ERROR dfs.DataNode blk_1 not found", None, cfg))["x"]
        if t.startswith("h")
    ]
    assert len(a) == 4 and a == [
        t for t in namespaces(featurize(template + "absorb", None, cfg))["x"] if t.startswith("h")
    ]  # deterministic
    assert sum(x == y for x, y in zip(a, b)) >= 3 > sum(x == y for x, y in zip(a, other))
    assert not any(t.startswith("h") for t in namespaces(featurize(template, None, CFG))["x"])
