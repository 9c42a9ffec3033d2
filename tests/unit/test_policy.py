from __future__ import annotations

import pytest

from banditroute.config import PolicyConfig, load_config
from banditroute.policy import Policy, PolicyError, action_features, vw_args

SPECS = load_config().models
NAMES = tuple(m.name for m in SPECS)


@pytest.mark.parametrize("exploration", ["squarecb", "epsilon", "softmax", "bag", "cover", "regcb", "greedy"])
def test_every_exploration_gives_a_pmf_and_learns(exploration: str) -> None:
    policy = Policy(PolicyConfig(exploration=exploration), SPECS)
    for i in range(300):
        features = "|w code python |x code" if i % 2 else "|w poem roses |x chars5"
        best = 3 if i % 2 else 1
        chosen = (i // 2) % len(NAMES)
        policy.learn(features, NAMES, chosen, 1 / len(NAMES), 0.0 if chosen == best else 1.0)
    for features, best in (("|w code python |x code", 3), ("|w poem roses |x chars5", 1)):
        pmf = policy.predict(features, NAMES)
        assert sum(pmf) == pytest.approx(1.0, abs=1e-4) and min(pmf) >= 0
        assert max(range(len(pmf)), key=pmf.__getitem__) == best, (exploration, pmf)


VW_REWARD = PolicyConfig(exploration="squarecb")  # VW's own pmf (the decomposed learner: test_decomposed.py)


def test_cached_action_examples_predict_like_fresh_ones() -> None:
    a, b = Policy(VW_REWARD, SPECS), Policy(VW_REWARD, SPECS)
    for i in range(50):
        for p in (a, b):
            p.learn(f"|w word{i % 5}", NAMES, i % 8, 0.125, (i % 3) / 2)
    for i in range(5):
        b.set_catalog([])  # no-op: keeps caches
        fresh = Policy(VW_REWARD, SPECS, model_data=a.serialize())
        assert a.predict(f"|w word{i}", NAMES) == pytest.approx(fresh.predict(f"|w word{i}", NAMES), abs=1e-6)
        assert a.predict(f"|w word{i}", NAMES) == pytest.approx(b.predict(f"|w word{i}", NAMES), abs=1e-6)


def test_subset_and_order_of_actions() -> None:
    policy = Policy(VW_REWARD, SPECS)
    pmf = policy.predict("|w hi", NAMES[:3])
    assert len(pmf) == 3 and sum(pmf) == pytest.approx(1.0, abs=1e-4)


def test_interactions_are_shared_x_action_with_distinct_letters() -> None:
    args = vw_args(PolicyConfig())
    pairs = [args[i + 1] for i, a in enumerate(args) if a == "-q"]
    assert sorted(pairs) == ["ca", "ua", "wa", "xa"]


def test_action_features_carry_catalog_attributes() -> None:
    text = action_features(next(m for m in SPECS if m.allow_sensitive_data))
    assert text.startswith("|a id=") and "|m " in text and "onprem" in text and "ctx" in text and ":" not in text


def test_garbage_model_bytes_are_refused() -> None:
    with pytest.raises(PolicyError):
        Policy(PolicyConfig(), SPECS, model_data=b"not a model")


def test_crossed_namespaces_and_attributes_are_configurable() -> None:
    args = vw_args(PolicyConfig(crossed_namespaces=("x", "u")))
    assert [args[i + 1] for i, a in enumerate(args) if a == "-q"] == ["xa", "ua"]
    spec = SPECS[0]
    assert action_features(spec, attributes=False) == "|a id=" + spec.name.replace(" ", "_")
    assert load_config().with_overrides(policy={"attributes": False}).policy.attributes is False


def test_min_learn_probability_clips_the_importance_weight() -> None:
    # Model 1 costs 0.6 ten times; model 0 costs 1.0 once, logged at probability 0.01. Weighted 100,
    # that one update sets model 0's estimate to about 1.0 (greedy picks model 1); clipped to weight 1,
    # it moves it only part of the way (greedy still picks model 0).
    names = NAMES[:2]
    for floor, pick in ((0.0, 1), (1.0, 0)):
        policy = Policy(PolicyConfig(exploration="greedy", min_learn_probability=floor, attributes=False), SPECS)
        for _ in range(10):
            policy.learn("|w hi", names, 1, 1.0, 0.6)
        policy.learn("|w hi", names, 0, 0.01, 1.0)
        assert policy.predict("|w hi", names)[pick] == pytest.approx(1.0)
    with pytest.raises(Exception, match="min_learn_probability"):
        load_config().with_overrides(policy={"min_learn_probability": 2.0})
