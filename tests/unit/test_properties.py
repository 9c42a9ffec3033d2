"""Property tests (hypothesis): any input to a pure module gives a valid result or a clean error."""

from __future__ import annotations

import math
import os
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banditroute import decider, estimators, features, reward
from banditroute import rules as guardrails
from banditroute.api.requests import ApiError, parse_reward, parse_reward_token, parse_route
from banditroute.catalog import Catalog
from banditroute.config import load_config
from banditroute.joiner import COMPLETE, NOT_PENDING, PENDING, Joiner, required_parts
from banditroute.policy import Policy
from banditroute.types import Decision, FeedbackPart, ModelSpec, Outcome

CONFIG = load_config()
POLICY = Policy(CONFIG.policy, CONFIG.models)
CATALOG = Catalog(CONFIG.models)
CAPABILITIES = sorted({c for m in CONFIG.models for c in m.capabilities} | {"teleportation"})
# Bounded so the whole file runs in seconds; BANDITROUTE_PROPERTY_EXAMPLES=5000 for a deeper search.
FAST = settings(
    max_examples=int(os.environ.get("BANDITROUTE_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_scalars = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
metadata_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
    | st.lists(st.text(max_size=20), max_size=5)
)
metadata = st.dictionaries(
    st.sampled_from(["user_tier", "channel", "task", "tenant", "language", "other"]), metadata_values, max_size=6
)


# -- features ---------------------------------------------------------------------------------


@FAST
@given(query=st.text(max_size=3000), meta=metadata)
def test_features_are_valid_vw_text_the_policy_accepts(query: str, meta: dict) -> None:
    text = features.featurize(query, meta, CONFIG.features)
    assert text.startswith("|w") and "|x" in text
    assert "\n" not in text and "\r" not in text
    for token in text.split(" "):
        assert token, "no empty tokens (VW would read a double space as nothing, but keep it clean)"
        if token not in ("|w", "|x", "|u"):
            assert "|" not in token and ":" not in token and not any(c.isspace() for c in token)
    # The decomposed learner's estimates of any text are finite, and its Thompson pmf is a distribution.
    mean, width = POLICY.quality(text, CATALOG.names)
    assert all(math.isfinite(v) for v in [*mean, *width])
    pmf = decider.decide(POLICY, CATALOG.names, text, 100, CONFIG.reward.weights, 256, 64, None, 0.0).pmf
    assert all(math.isfinite(p) and p >= 0 for p in pmf)
    assert sum(pmf) == pytest.approx(1.0, abs=1e-4)


# -- rules ------------------------------------------------------------------------------------

NAMES = list(CATALOG.names)
model_sets = st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True).map(tuple)
rules_configs = st.builds(
    lambda tiers, tenants, ceiling: replace(CONFIG.rules, tiers=tiers, tenants=tenants, budget_price_ceiling=ceiling),
    st.dictionaries(st.sampled_from(["free", "pro"]), model_sets, max_size=2),
    st.dictionaries(st.sampled_from(["acme", "globex"]), model_sets, max_size=2),
    st.floats(0.0, 100.0),
)
rule_requests = st.builds(
    guardrails.RuleRequest,
    input_tokens=st.integers(0, 2_000_000),
    max_output_tokens=st.none() | st.integers(1, 10_000_000),
    capabilities=st.frozensets(st.sampled_from(CAPABILITIES), max_size=3),
    sensitive=st.booleans(),
    user_tier=st.none() | st.sampled_from(["free", "pro", "enterprise"]),
    tenant=st.none() | st.sampled_from(["acme", "globex", "initech"]),
    max_latency_ms=st.none() | st.floats(0.0, 10_000.0),
    escalate_from=st.none() | st.sampled_from([*NAMES, "no-such-model"]),
)
p95s = st.dictionaries(st.sampled_from(NAMES), st.floats(0.0, 10_000.0))
live_states = st.builds(
    lambda cooling, exhausted, p95: guardrails.LiveState(frozenset(cooling), exhausted, (lambda m: p95.get(m, 500.0))),
    st.sets(st.sampled_from(NAMES), max_size=4),
    st.booleans(),
    p95s,
)


@FAST
@given(cfg=rules_configs, req=rule_requests, live=live_states)
def test_rules_give_a_consistent_allowed_set_or_name_the_rule(cfg, req, live) -> None:
    rules = guardrails.Rules(CATALOG, cfg)
    try:
        verdict = rules.evaluate(req, live)
    except guardrails.UnknownModel:
        assert req.escalate_from not in CATALOG
        return
    except guardrails.NoModelAllowed as exc:
        assert exc.rule in guardrails.RULE_ORDER and exc.rules[-1] == exc.rule
        assert set(exc.excluded) == set(NAMES) and set(exc.excluded.values()) <= set(exc.rules)
        return
    assert verdict.allowed and set(verdict.allowed) <= set(NAMES)
    assert set(verdict.allowed).isdisjoint(verdict.excluded)
    assert set(verdict.allowed) | set(verdict.excluded) == set(NAMES)
    assert set(verdict.excluded.values()) <= set(verdict.rules) <= set(guardrails.RULE_ORDER)
    for name in verdict.allowed:
        spec = CATALOG[name]
        assert req.capabilities <= spec.capabilities
        assert spec.context_window >= req.input_tokens + (req.max_output_tokens or 0)
        assert not req.sensitive or spec.allow_sensitive_data
        assert req.user_tier not in cfg.tiers or name in cfg.tiers[req.user_tier]
        assert req.tenant not in cfg.tenants or name in cfg.tenants[req.tenant]
        assert req.escalate_from is None or spec.output_price > CATALOG[req.escalate_from].output_price
        assert not live.budget_exhausted or spec.output_price <= cfg.budget_price_ceiling
        assert req.max_latency_ms is None or live.p95_ms(name) <= req.max_latency_ms
        assert name not in live.cooling


@FAST
@given(
    query=st.text(min_size=1, max_size=500),
    meta=st.dictionaries(
        st.sampled_from(["capabilities", "sensitive", "max_latency_ms", "user_tier", "tenant"]) | st.text(max_size=12),
        json_values,
        max_size=6,
    ),
)
def test_rule_inputs_read_any_metadata_the_api_accepts(query: str, meta: dict) -> None:
    try:
        parsed = parse_route({"query": query, "metadata": meta}, max_query_chars=1000)
    except ApiError:
        return
    req = guardrails.request_from(parsed.query, parsed.metadata, features.estimate_tokens(query), None, None, True)
    assert isinstance(req.sensitive, bool) and all(isinstance(c, str) for c in req.capabilities)


# -- reward -----------------------------------------------------------------------------------

finite_nonneg = st.floats(0.0, 1e6, allow_nan=False)
outcomes = st.builds(
    Outcome,
    quality=st.none() | st.floats(0.0, 1.0),
    latency_ms=st.none() | st.floats(0.0, 86_400_000.0),
    cost_usd=st.none() | finite_nonneg,
    input_tokens=st.none() | st.integers(0, 100_000_000),
    output_tokens=st.none() | st.integers(0, 100_000_000),
    error=st.none() | st.sampled_from(["timeout", "other"]),
)
reward_configs = st.builds(
    lambda cw, lw, dq: replace(CONFIG.reward, cost_weight=cw, latency_weight=lw, default_quality=dq),
    st.floats(0.0, 100.0),
    st.floats(0.0, 100.0),
    st.none() | st.floats(0.0, 1.0),
)


@FAST
@given(
    outcome=outcomes, model=st.sampled_from(CONFIG.models), input_tokens=st.integers(0, 10_000_000), cfg=reward_configs
)
def test_reward_is_finite_and_maps_into_vw_range(outcome: Outcome, model: ModelSpec, input_tokens: int, cfg) -> None:
    r = reward.resolve(outcome, model, input_tokens, cfg)
    if r is None:
        assert outcome.quality is None and outcome.error is None and cfg.default_quality is None
        return
    assert math.isfinite(r.value) and r.value <= 1.0
    assert 0.0 <= r.quality <= 1.0 and r.cost_usd >= 0 and r.latency_ms >= 0
    span = reward.reward_span(CONFIG.models, cfg)
    cost = reward.to_vw_cost(r.value, span)
    assert 0.0 <= cost <= 1.0
    better = reward.combine(min(1.0, r.quality + 0.1), r.cost_usd, r.latency_ms, cfg.weights)
    assert better >= r.value  # more quality never lowers the reward
    assert reward.to_vw_cost(better, span) <= cost


@given(value=st.floats(allow_nan=True, allow_infinity=True), span=st.floats(1.0, 1e9))
def test_vw_cost_is_always_in_range(value: float, span: float) -> None:
    cost = reward.to_vw_cost(value, span)
    assert 0.0 <= cost <= 1.0


# -- joiner -----------------------------------------------------------------------------------


def decision(i: int) -> Decision:
    return Decision(f"e{i}", float(i), "|w x", ("a", "b"), 0, (0.5, 0.5), False, "", 1, None)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.floats(0.0, 50.0)),
        st.tuples(st.just("part"), st.integers(0, 60), st.sampled_from(["quality", "cost", "latency", "error"])),
        st.tuples(st.just("expire"), st.floats(0.0, 20.0)),
        st.tuples(st.just("discard"), st.integers(0, 60)),
    ),
    max_size=120,
)


@FAST
@given(
    steps=ops,
    max_pending=st.integers(1, 8),
    cost_weight=st.sampled_from([0.0, 0.1]),
    rule=st.sampled_from(["first", "last"]),
)
def test_joiner_releases_each_decision_exactly_once_within_bounds(
    steps: list, max_pending: int, cost_weight: float, rule: str
) -> None:
    joiner = Joiner(required_parts(cost_weight, 0.0), rule, max_pending)
    now, added, released, discarded = 0.0, [], [], set()
    for step in steps:
        if step[0] == "add":
            d = decision(len(added))
            added.append(d.event_id)
            released += [dec.event_id for dec, _ in joiner.add(d, now + step[1])]
        elif step[0] == "part":
            value = {
                "quality": {"quality": 0.5},
                "cost": {"cost_usd": 0.1},
                "latency": {"latency_ms": 3.0},
                "error": {"error": "timeout"},
            }[step[2]]
            result = joiner.add_part(FeedbackPart(f"e{step[1]}", now, **value))
            assert result.status in (PENDING, COMPLETE, NOT_PENDING)
            if result.status == COMPLETE:
                released.append(result.joined[0].event_id)
        elif step[0] == "expire":
            now += step[1]
            released += [dec.event_id for dec, _ in joiner.expire(now)]
        else:
            eid = f"e{step[1]}"
            if eid in joiner:
                discarded.add(eid)
            joiner.discard(eid)
        assert len(joiner) <= max_pending
        assert joiner.deadline_entries() <= 2 * len(joiner) + 1024 + 1
    released += [dec.event_id for dec, _ in joiner.expire(math.inf)]
    assert len(joiner) == 0
    assert len(released) == len(set(released)), "a decision was released twice"
    assert set(released) | discarded == set(added) and not set(released) & discarded


# -- the API's validation -------------------------------------------------------------------------


@FAST
@given(
    obj=st.dictionaries(st.sampled_from(["query", "metadata", "max_output_tokens", "other"]), json_values)
    | st.fixed_dictionaries({"query": st.text(max_size=50)}, optional={"metadata": json_values})
)
def test_route_validation_accepts_or_refuses_cleanly(obj: dict) -> None:
    try:
        req = parse_route(obj, max_query_chars=1000)
    except ApiError as exc:
        assert exc.status in (400, 413) and exc.code and exc.message
        return
    assert isinstance(req.query, str) and req.query.strip() and len(req.query) <= 1000
    assert isinstance(req.metadata, dict) and len(req.metadata) <= 32


@FAST
@given(
    obj=st.dictionaries(
        st.sampled_from(
            [
                "event_id",
                "quality",
                "latency_ms",
                "cost_usd",
                "input_tokens",
                "output_tokens",
                "source",
                "error",
                "reward_token",
                "x",
            ]
        ),
        json_values | st.floats(-2.0, 2.0) | st.sampled_from(["e1", "user", "timeout"]),
    )
)
def test_reward_validation_accepts_or_refuses_cleanly(obj: dict) -> None:
    try:
        part = parse_reward(obj, now=1.0)
        parse_reward_token(obj)
    except ApiError as exc:
        assert exc.status == 400 and exc.code and exc.message
        return
    assert part.quality is None or 0.0 <= part.quality <= 1.0
    assert part.latency_ms is None or part.latency_ms >= 0
    assert any(
        v is not None
        for v in (part.quality, part.latency_ms, part.cost_usd, part.input_tokens, part.output_tokens, part.error)
    )


# -- estimators -------------------------------------------------------------------------------

probabilities = st.floats(estimators.MIN_LOGGED_PROB, 1.0)
rounds = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n),
        st.lists(probabilities, min_size=n, max_size=n),
        st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
    )
)


@FAST
@given(data=rounds, ci=st.sampled_from(["normal", "bootstrap"]))
def test_estimators_give_finite_bounded_values_on_valid_logs(data: tuple, ci: str) -> None:
    rewards, logged, target = data
    found = estimators.evaluate_all(
        rewards, logged, target, q_hat_logged=rewards, q_hat_target=target, ci=ci, n_boot=50
    )
    low_r, high_r = min(rewards), max(rewards)
    for est in found.values() if isinstance(found, dict) else found:
        assert est.n == len(rewards)
        if math.isnan(est.value):  # SNIPS with every weight zero: undefined, said so
            assert est.method == "snips" and not any(target)
            continue
        assert math.isfinite(est.value), est
        if ci == "normal" and est.n > 1 and math.isfinite(est.stderr):
            assert est.ci_low <= est.value <= est.ci_high
        if est.method == "snips":
            assert low_r - 1e-9 <= est.value <= high_r + 1e-9


@FAST
@given(
    rewards=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
    logged=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
    target=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
)
def test_estimators_refuse_bad_logs_cleanly(rewards: list, logged: list, target: list) -> None:
    try:
        found = estimators.evaluate_all(rewards, logged, target)
    except ValueError:
        return
    for est in found.values() if isinstance(found, dict) else found:
        assert math.isfinite(est.value) or est.method == "snips"
