"""The specification of Policy's fast path: it must behave exactly like VW's public API.

`Policy.predict` and `Policy.learn` call the bindings' private core (`vowpal_wabbit_next._core`)
with cached action examples. This test replays one stream through a Policy and through a public
`vowpal_wabbit_next.Workspace` built from the same arguments, fed the same examples through the
public parser, `predict_one` and `learn_one`, and requires the same pmf at every step. It is the
guard that lets the `vowpal-wabbit-next` pin move: a release that changes the core under the
public wrappers fails here. Only Policy's public surface is used (`args`, `predict`, `learn`).

The label text is part of the specification: VW's text parser reads "0.123" and "0.123000" as
float32 values one unit apart, enough to move the pmfs by 1e-5 within 300 steps. Policy writes
the cost and the probability with six decimals, so the public side does too.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import vowpal_wabbit_next as vw

from banditroute.config import PolicyConfig, load_config
from banditroute.features import featurize
from banditroute.policy import Policy, action_features

CONFIG = load_config()
SPECS = {m.name: m for m in CONFIG.models}
STEPS = 300
WORDS = ("python", "list", "reverse", "poem", "roses", "sql", "join", "error", "refused", "tax", "42", "0x1f")
METADATA = ({"user_tier": "free", "channel": "web"}, {"user_tier": "pro", "task": "code"}, None)


def stream(seed: int) -> Iterator[tuple[str, list[str], int, float, float]]:
    """(features, allowed models, chosen index, logged probability, cost) per step, seeded."""
    rng = np.random.default_rng(seed)
    names = sorted(SPECS)
    for step in range(STEPS):
        query = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 12))))
        features = featurize(query, METADATA[step % len(METADATA)], CONFIG.features)
        size = int(rng.integers(2, len(names) + 1))
        models = [names[i] for i in rng.permutation(len(names))[:size]]
        chosen = int(rng.integers(size))
        cost = float(rng.random())
        yield features, models, chosen, 1.0 / size, cost


def public_examples(
    parser: vw.TextFormatParser, features: str, models: list[str], label: tuple[int, float, float] | None = None
) -> list[vw.Example]:
    lines = ["shared " + features]
    for i, m in enumerate(models):
        text = action_features(SPECS[m], CONFIG.policy.cross_attributes, CONFIG.policy.attributes)
        if label is not None and label[0] == i:
            text = f"0:{label[1]:.6f}:{label[2]:.6f} " + text
        lines.append(text)
    return [parser.parse_line(line) for line in lines]


@pytest.mark.parametrize("exploration", ["squarecb", "epsilon", "softmax", "bag"])
def test_fast_path_matches_the_public_workspace(exploration: str) -> None:
    config = PolicyConfig(exploration=exploration)
    assert config.attributes == CONFIG.policy.attributes and config.cross_attributes == CONFIG.policy.cross_attributes
    policy = Policy(config, CONFIG.models)
    public = vw.Workspace(policy.args)
    parser = vw.TextFormatParser(public)
    for step, (features, models, chosen, probability, cost) in enumerate(stream(seed=7)):
        expected = [0.0] * len(models)
        for index, prob in public.predict_one(public_examples(parser, features, models)):
            expected[index] = prob
        assert policy.predict(features, models) == pytest.approx(expected, abs=1e-6), (exploration, step)
        public.learn_one(public_examples(parser, features, models, (chosen, cost, probability)))
        policy.learn(features, models, chosen, probability, cost)
