"""The router's side of what the log holds: keyed word tokens live and logged alike, none for sensitive
requests unless `features.log_sensitive_words`, and a policy relearned from such a log equals the live one."""

from __future__ import annotations

import random

import pytest

from banditroute import features
from banditroute.config import Config, load_config
from banditroute.router import MemorySink, Router
from banditroute.types import FeedbackPart

KEY = features.word_key(b"the data directory's secret, 32+")
QUERIES = [
    "Write a Python function that merges two sorted lists",
    "Summarise this incident report about the payment outage",
    "Email the invoice to jane.roe@corp.io by Friday",  # personal data: sensitive
    "What is the capital of Peru?",
]


def words(feats: str) -> list[str]:
    return feats.split("|x")[0].split()[1:]


def traffic(router: Router, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for step in range(n):
        d = router.route(rng.choice(QUERIES), {"task": "qa"}, now=float(step))
        quality = 0.9 if d.model in ("gpt-4.1-nano", "codestral") else rng.random()
        router.feedback(FeedbackPart(d.event_id, step + 0.5, quality=quality, output_tokens=100), step + 0.5)


@pytest.mark.parametrize("opt_in", [False, True])
def test_a_sensitive_request_keeps_no_words_unless_the_operator_opts_in(opt_in: bool) -> None:
    config = load_config().with_overrides(features={"log_sensitive_words": opt_in})
    sink = MemorySink()
    router = Router(config, sink=sink, word_key=KEY)
    plain = router.route(QUERIES[0], now=0.0)
    sensitive = router.route(QUERIES[2], now=0.0)
    tagged = router.route(QUERIES[3], {"sensitive": True}, now=0.0)
    assert "data_policy" in sensitive.reason and "data_policy" in tagged.reason
    expected = ["write", "a", "python", "function", "that", "merges"]
    assert words(plain.features)[:6] == features.WordTokens(KEY)(expected)
    assert [d.features for d in sink.decisions] == [plain.features, sensitive.features, tagged.features]
    if opt_in:
        assert len(words(sensitive.features)) == 10 and len(words(tagged.features)) == 6
    else:
        assert words(sensitive.features) == [] and words(tagged.features) == []
    for d in sink.decisions:
        assert not any(w in d.features.lower() for w in ("python", "invoice", "jane", "corp", "peru"))


def test_relearning_a_hashed_log_reproduces_the_live_policy_under_its_key_only() -> None:
    config: Config = load_config()
    sink = MemorySink()
    live = Router(config, sink=sink, word_key=KEY)
    traffic(live, 200, seed=3)
    decisions = {d.event_id: d for d in sink.decisions}
    rows = [(row, decisions[row.event_id]) for row in sink.learned_rows]
    same, other = Router(config, word_key=KEY), Router(config, word_key=features.word_key(b"x" * 32))
    for router in (same, other):
        router.relearn(rows)
        assert router.policy.serialize() == live.policy.serialize()  # learned from the logged tokens
    probe = "Write a Python function that merges two sorted arrays"
    assert same.route(probe, now=1e3).pmf == live.route(probe, now=1e3).pmf
    # Another key featurizes the same query into other tokens, which the relearned weights do not know.
    assert words(other.route(probe, now=1e3).features) != words(live.route(probe, now=1e3).features)
