from __future__ import annotations

import pytest

from banditroute.config import FeaturesConfig
from banditroute.features import UNKEYED, WordTokens, estimate_tokens, featurize, word_key

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
    assert set(UNKEYED(["hello", "world", "hello world"])) <= set(ns["w"])
    assert ns["u"] == ["user_tier=pro_plan", "task=x_y_z"]
    assert text.count("|") == 3 and ":" not in text


def test_deterministic_bounded_and_deduplicated() -> None:
    long = "spam " * 100_000
    a = featurize(long, None, BIGRAMS)
    assert a == featurize(long, None, BIGRAMS)
    assert len(a) < 2000 and namespaces(a)["w"] == UNKEYED(["spam", "spam spam"])
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
    assert set(UNKEYED(["#num2", "#hex"])) <= set(a["w"]) and a["w"] == b["w"]
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


def test_words_and_grams_are_keyed_tokens_that_reveal_no_text() -> None:
    cfg = FeaturesConfig(bigrams=True, char_ngrams=4, tail_words=4, max_words=4)
    query = "Zanzibarian quokka mail jane.roe@corp.io please and more words until the zanzibarian end"
    key = word_key(b"a secret of the data directory!")
    text = featurize(query, None, cfg, WordTokens(key))
    ns = namespaces(text)
    for fragment in ("zanzibarian", "quokka", "jane", "corp", "roe@", "anzi"):
        assert fragment not in text.lower()
    assert all(len(t) == 5 for t in ns["w"] + ns["c"])
    assert ns["w"][:2] == WordTokens(key)(["zanzibarian", "quokka"])  # deterministic for one key
    other = namespaces(featurize(query, None, cfg, WordTokens(word_key(b"another data directory secret"))))
    assert not set(other["w"]) & set(ns["w"]) and other["x"] == ns["x"]  # another key: other tokens


def test_word_key_is_not_the_secret_and_depends_on_it() -> None:
    secret = b"s" * 32
    assert word_key(secret) != secret and len(word_key(secret)) == 32
    assert word_key(secret) != word_key(b"t" * 32)


def test_without_words_only_structure_and_metadata_remain() -> None:
    cfg = FeaturesConfig(char_ngrams=3, simhash_tables=2, simhash_bits=4)
    text = featurize("What is the ssn 123-45-6789 of john?", {"task": "qa"}, cfg, with_words=False)
    ns = namespaces(text)
    assert ns["w"] == [] and "c" not in ns and not any(t.startswith("h") for t in ns["x"])
    assert {"q_what", "ends_q"} <= set(ns["x"]) and ns["u"] == ["task=qa"]


def test_the_token_cache_is_bounded_and_keeps_answering_the_same() -> None:
    tokens = WordTokens(b"k" * 32, cache_max=8)
    words = [f"w{i}" for i in range(50)]
    first = tokens(words)
    assert tokens(words) == first and len(set(first)) == 50
    assert len(tokens._cache) <= 8
