"""How the decomposed learner learns: from a finished join (live and, identically, when relearning the
log) and from an eval sample with every model's outcome (full information). Pure, no I/O."""

from __future__ import annotations

from banditroute import decider, features, reward
from banditroute.config import Config
from banditroute.policy import Policy
from banditroute.types import Decision, EvalExample, LearnedRow, RewardWeights


def learn_row(policy: Policy, decision: Decision, row: LearnedRow, config: Config) -> None:
    """One finished join. The live router and `Router.relearn` both call this with the logged row, so
    relearning the log reproduces the live policy exactly.

    The budget sums first take this decision at the estimates before it is learned; then quality (when
    it arrived: `vw_cost` = 1 - quality), the observed cost and the observed latency update their own
    estimates. A join without quality still teaches cost and latency.
    """
    model = decision.model
    baseline = policy.state.baseline if not config.policy.baseline_model else config.policy.baseline_model
    if baseline is not None and baseline in decision.models:
        r = config.reward
        weights = RewardWeights(row.cost_weight, row.latency_weight, r.cost_scale, r.latency_scale)
        pair = (model,) if baseline == model else (model, baseline)
        est = decider.estimated_rewards(
            policy, pair, decision.features, decision.input_tokens, weights, r.default_output_tokens
        )
        policy.state.served += float(est[0])
        policy.state.base += float(est[-1])
    if row.vw_cost is not None:
        policy.learn_quality(decision.features, decision.models, decision.chosen, 1.0 - row.vw_cost)
    defaulted = row.defaulted.split(",")
    stats = policy.state.of(model)
    if row.cost_usd is not None and "cost" not in defaulted:
        stats.observe_cost(policy.specs[model], decision.input_tokens, row.cost_usd)
    if row.latency_ms is not None and "latency" not in defaulted:
        stats.observe_latency(row.latency_ms)


def learn_example(
    policy: Policy,
    example: EvalExample,
    models: tuple[str, ...],
    config: Config,
    tokens: features.WordTokens,
) -> dict[str, float]:
    """Every model's outcome on one eval prompt, each a full-information update; returns their rewards.

    `tokens`: the word tokens of the router that will decide with this policy (Router.word_tokens)."""
    input_tokens = features.estimate_tokens(example.query)
    feats = features.featurize(example.query, example.metadata, config.features, tokens)
    rewards = {}
    for i, model in enumerate(models):
        outcome = example.outcomes[model]
        r = reward.resolve(outcome, policy.specs[model], input_tokens, config.reward)
        stats = policy.state.of(model)
        if r is not None:
            policy.learn_quality(feats, models, i, r.quality)
            rewards[model] = r.value
            if "cost" not in r.defaulted:
                stats.observe_cost(policy.specs[model], input_tokens, r.cost_usd)
            if "latency" not in r.defaulted:
                stats.observe_latency(r.latency_ms)
        elif outcome.cost_usd is not None:
            stats.observe_cost(policy.specs[model], input_tokens, outcome.cost_usd)
    return rewards
