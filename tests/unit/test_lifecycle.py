"""Cooldowns, cold start, catalog reloads, stickiness, budgets and latency on the Router itself.

Time is injected (`now`), rewards are simulated, so each scenario runs in well under a second.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from banditroute import live
from banditroute.config import Config, load_config
from banditroute.router import MemorySink, Router, sample, uniform_from
from banditroute.rules import NoModelAllowed
from banditroute.types import FeedbackPart

BASE = load_config()
SPECS = {m.name: m for m in BASE.models}
QUERIES = [
    "summarise the meeting notes about {}",
    "write a haiku about {}",
    "explain {} to a child",
    "list three facts about {}",
    "translate a sentence about {} into Spanish",
]
NOUNS = ["owls", "tax forms", "glaciers", "chess", "bread", "volcanoes", "jazz", "rust"]


def config(models: tuple[str, ...] | None = None, **rules: object) -> Config:
    """Quality alone counts (cost_weight 0), so simulated quality decides which model is best."""
    cfg = BASE.with_overrides(reward={"cost_weight": 0.0}, rules=rules)
    if models is not None:
        cfg = replace(cfg, models=tuple(SPECS[m] for m in models))
    return cfg


def query(rng: random.Random) -> str:
    return rng.choice(QUERIES).format(rng.choice(NOUNS))


def answer(router: Router, decision, quality: float, now: float) -> None:
    result = router.feedback(FeedbackPart(decision.event_id, now, quality=quality), now)
    assert result.learned is not None


def test_repeated_failures_cool_a_model_down_and_it_returns() -> None:
    router = Router(
        config(("gpt-4o-mini", "codestral"), cooldown_failures=3, cooldown_window_s=60.0, cooldown_s=30.0),
        sink=MemorySink(),
    )
    rng = random.Random(1)
    now, failures = 1000.0, 0
    # Seeded event ids (the sampling draw comes from the id): with random ids the three failures
    # could spread over more than the 60 s window, and no cooldown would start (1 run in ~5).
    for i in range(500):
        d = router.route(query(rng), now=now, event_id=f"cooldown-{i}")
        if d.model == "codestral":
            row = router.feedback(FeedbackPart(d.event_id, now, error="server_error", source="system"), now).learned
            assert row is not None and row.quality == 0.0  # a failure is learned at once as quality 0
            failures += 1
            if failures == 3:
                break
        else:
            # A poor answer, so that the decomposed learner keeps trying codestral after its first failure.
            answer(router, d, 0.2, now)
        now += 1.0
    assert failures == 3
    assert set(router.stats(now)["cooldowns"]) == {"codestral"}
    assert router.stats(now)["cooldowns_started"] == 1
    cooled_at = now
    while now < cooled_at + 29.5:
        d = router.route(query(rng), now=now)
        assert d.model == "gpt-4o-mini" and d.models == ("gpt-4o-mini",)
        assert d.excluded == {"codestral": "cooldown"} and "codestral" not in d.fallbacks
        assert "cooldown" in d.reason
        answer(router, d, 0.8, now)
        now += 0.5
    now = cooled_at + 30.0
    d = router.route(query(rng), now=now)
    assert set(d.models) == {"gpt-4o-mini", "codestral"} and d.excluded == {}
    assert router.stats(now)["cooldowns"] == {}


def test_failures_spread_out_do_not_start_a_cooldown() -> None:
    cool = live.Cooldowns(failures=3, window_s=60.0, duration_s=30.0)
    assert [cool.failure("m", t) for t in (0.0, 40.0, 80.0, 120.0, 160.0)] == [False] * 5  # 2 per minute
    assert [cool.failure("m", t) for t in (300.0, 301.0, 302.0)] == [False, False, True]
    assert cool.cooling("m", 331.9) and not cool.cooling("m", 332.0)
    assert not cool.failure("m", 332.5)  # the count started afresh after the cooldown


def test_cold_start_share_is_what_is_sampled_and_logged() -> None:
    # The cold-start floor is the VW reward learner's rule (the decomposed learner explores by its posterior).
    cfg = config(cold_start_share=0.1, cold_start_rewards=5).with_overrides(policy={"exploration": "squarecb"})
    router = Router(cfg, sink=MemorySink())
    rng = random.Random(2)
    for i in range(200):
        d = router.route(query(rng), now=float(i))
        assert sum(d.pmf) == pytest.approx(1.0)
        assert d.models[sample(list(d.pmf), uniform_from(d.event_id))] == d.model  # reproducible from its id
        cold = {m for m in d.models if router.rewards[m] < 5}
        assert all(p >= 0.1 - 1e-12 for m, p in zip(d.models, d.pmf) if m in cold)
        logged = router.sink.decisions[-1]
        assert logged.pmf == d.pmf and logged.probability == d.probability
        answer(router, d, 0.5, float(i))
    assert router.stats(200.0)["cold_start"] == []  # every model got its 5 rewards by then


def run_world(router: Router, truth: dict[str, float], steps: int, start: float, rng: random.Random) -> list[str]:
    chosen = []
    for i in range(steps):
        now = start + i
        d = router.route(query(rng), now=now)
        chosen.append(d.model)
        answer(router, d, min(1.0, max(0.0, truth[d.model] + rng.gauss(0.0, 0.05))), now)
    return chosen


def test_a_model_added_at_run_time_is_explored_then_chosen_when_best() -> None:
    truth = {"gpt-4o-mini": 0.6, "codestral": 0.45, "claude-3-5-haiku": 0.3}
    router = Router(config(tuple(truth), cold_start_share=0.1, cold_start_rewards=20), sink=MemorySink())
    rng = random.Random(4)
    before = run_world(router, truth, 400, 0.0, rng)
    assert before[-100:].count("gpt-4o-mini") >= 70  # learned the best of the three

    summary = router.reload_catalog((*router.catalog.specs, SPECS["gpt-4.1"]))
    assert summary["added"] == ["gpt-4.1"] and summary["removed"] == []
    # No quota: the decomposed learner stopped trying the weaker two before 20 rewards each.
    assert "gpt-4.1" in router.stats(400.0)["cold_start"]
    truth["gpt-4.1"] = 0.95
    d = router.route("a first look at the new model", now=400.5)
    assert dict(zip(d.models, d.pmf))["gpt-4.1"] >= 0.1  # explored on purpose from its first request
    after = run_world(router, truth, 1200, 401.0, rng)
    assert after[:300].count("gpt-4.1") >= 20  # it got its cold-start rewards early
    assert after[-200:].count("gpt-4.1") >= 140, after[-200:].count("gpt-4.1")  # and then wins


def test_a_model_removed_mid_stream_is_never_routed_again_and_its_pending_events_still_learn() -> None:
    names = ("gpt-4o-mini", "codestral", "claude-3-5-haiku", "gpt-4.1")
    router = Router(config(names), sink=MemorySink())
    rng = random.Random(5)
    pending = []
    for i in range(300):
        # Seeded event ids (the draw comes from the id): random ones left `pending` empty 1 run in 5.
        d = router.route(query(rng), {"conversation_id": f"c{i % 10}"}, now=float(i), event_id=f"removed-{i}")
        if d.model == "gpt-4.1" and len(pending) < 5:
            pending.append(d)  # in flight when the model is removed
        else:
            answer(router, d, 0.5, float(i))
    assert pending
    summary = router.reload_catalog(tuple(SPECS[m] for m in names if m != "gpt-4.1"))
    assert summary["removed"] == ["gpt-4.1"]
    for i in range(300, 600):
        d = router.route(query(rng), {"conversation_id": f"c{i % 10}"}, now=float(i), event_id=f"removed-{i}")
        assert "gpt-4.1" not in d.models and "gpt-4.1" not in d.fallbacks and "gpt-4.1" not in d.excluded
        answer(router, d, 0.5, float(i))
    for d in pending:
        row = router.feedback(FeedbackPart(d.event_id, 600.0, quality=0.9), 600.0).learned
        assert row is not None and row.vw_cost is not None
    assert "gpt-4.1" not in router.stats(600.0)["rewards_per_model"]


def test_a_price_change_takes_effect_at_once() -> None:
    router = Router(config(("gpt-4o-mini", "codestral")).with_overrides(reward={"cost_weight": 0.1}), sink=MemorySink())
    d = router.route("hello", {"user_tier": "x"}, now=0.0)
    router.feedback(FeedbackPart(d.event_id, 0.0, quality=1.0, input_tokens=1000, output_tokens=1000), 0.0)
    spec = SPECS[d.model]
    router.reload_catalog(
        [
            replace(spec, input_price=spec.input_price * 10, output_price=spec.output_price * 10),
            *(s for s in router.catalog.specs if s.name != d.model),
        ]
    )
    # The caller's own restriction serves the repriced model (a learner may now rightly avoid it).
    e = router.route("hello again", now=1.0, restrict_to=("only", frozenset({d.model})))
    assert e.model == d.model
    row = router.feedback(
        FeedbackPart(e.event_id, 1.0, quality=1.0, input_tokens=1000, output_tokens=1000), 1.0
    ).learned
    assert row.cost_usd == pytest.approx(10 * spec.cost_usd(1000, 1000))
    assert router.rules.price(d.model) == pytest.approx(10 * spec.output_price)


def test_a_conversation_keeps_its_model_unless_a_rule_forces_a_change() -> None:
    router = Router(config(), sink=MemorySink())
    rng = random.Random(6)
    # The first draw is fixed (seeded event id) and lands on a model a capability rule can exclude;
    # gpt-4.1 has every capability in the catalog, so no capability rule could move it.
    first = router.route(query(rng), {"conversation_id": "conv-1"}, now=0.0, event_id="conv-1-first")
    assert SPECS[first.model].capabilities != frozenset().union(*(m.capabilities for m in SPECS.values()))
    for t in range(1, 40):
        d = router.route(query(rng), {"conversation_id": "conv-1"}, now=float(t))
        assert d.model == first.model and d.pmf == (1.0,) and d.models == (first.model,)
        assert d.reason.startswith("sticky conversation") and not d.explored
        assert first.model not in d.fallbacks and len(d.fallbacks) == len(router.catalog) - 1
    others = {router.route(query(rng), {"conversation_id": f"other-{i}"}, now=50.0).model for i in range(40)}
    assert len(others) > 1  # without a conversation id in common, the bandit samples freely
    # A rule that excludes the conversation's model moves it, and it sticks to the new one.
    need = "code" if first.model not in {"codestral", "gpt-4.1", "claude-sonnet-4", "claude-opus-4"} else "vision"
    need = need if need not in SPECS[first.model].capabilities else "long_context"
    moved = router.route(query(rng), {"conversation_id": "conv-1", "capabilities": [need]}, now=60.0)
    assert moved.model != first.model
    again = router.route(query(rng), {"conversation_id": "conv-1"}, now=61.0)
    assert again.model == moved.model
    # After sticky_ttl_s of silence the conversation is free again.
    late = router.route(query(rng), {"conversation_id": "conv-1"}, now=61.0 + BASE.rules.sticky_ttl_s + 1)
    assert len(late.models) == len(router.catalog)


def test_stickiness_can_be_turned_off_and_is_bounded() -> None:
    router = Router(config(sticky_conversations=False), sink=MemorySink())
    d = router.route("hi", {"conversation_id": "c"}, now=0.0)
    assert len(d.models) == len(router.catalog) and router.stats(0.0)["sticky_conversations"] == 0
    router = Router(config(sticky_max_conversations=10), sink=MemorySink())
    for i in range(50):
        router.route("hi", {"conversation_id": f"c{i}"}, now=float(i))
    assert router.stats(50.0)["sticky_conversations"] == 10


def test_a_spent_budget_allows_only_models_under_the_price_ceiling_until_the_next_period() -> None:
    router = Router(config(budgets={"acme": 0.01}, budget_period_s=3600.0, budget_price_ceiling=1.0), sink=MemorySink())
    now = 7200.0  # the start of a period
    for _ in range(2):
        d = router.route("hello", {"tenant": "acme"}, now=now)
        assert "budget" not in d.reason
        router.feedback(FeedbackPart(d.event_id, now, quality=1.0, cost_usd=0.006), now)
    assert router.stats(now)["budgets"]["acme"]["spent_usd"] == pytest.approx(0.012)
    d = router.route("hello", {"tenant": "acme"}, now=now + 10)
    assert all(SPECS[m].output_price <= 1.0 for m in d.models)
    assert {m for m, rule in d.excluded.items() if rule == "budget"} == {
        m for m in SPECS if SPECS[m].output_price > 1.0
    }
    other = router.route("hello", {"tenant": "globex"}, now=now + 10)  # another tenant is not affected
    assert len(other.models) == len(SPECS)
    fresh = router.route("hello", {"tenant": "acme"}, now=now + 3600.0)
    assert len(fresh.models) == len(SPECS)


def test_latency_budget_uses_the_observed_p95() -> None:
    router = Router(config(("gpt-4o-mini", "codestral", "claude-opus-4"), latency_min_samples=10), sink=MemorySink())
    # Priors first: opus' catalog latency (1500 ms + 256 tokens at 35/s) is far above 3 s.
    d = router.route("quick one", {"max_latency_ms": 3000}, now=0.0)
    assert d.excluded == {"claude-opus-4": "latency"} and "latency" in d.reason
    # Then what is observed: codestral turns out slow, opus fast.
    for model, latency in (("codestral", 5000.0), ("claude-opus-4", 900.0)):
        for _ in range(20):
            router.latency.observe(model, latency)
    d = router.route("quick one", {"max_latency_ms": 3000}, now=1.0)
    assert d.excluded == {"codestral": "latency"}
    with pytest.raises(NoModelAllowed) as err:
        router.route("quick one", {"max_latency_ms": 10}, now=2.0)
    assert err.value.rule == "latency"


def test_latency_is_learned_from_feedback_and_the_p95_is_a_quantile() -> None:
    router = Router(config(("gpt-4o-mini", "codestral"), latency_min_samples=5), sink=MemorySink())
    for i in range(40):
        d = router.route(query(random.Random(i)), now=float(i))
        router.feedback(FeedbackPart(d.event_id, float(i), quality=1.0, latency_ms=100.0 * (i % 20 + 1)), float(i))
    observed = router.stats(40.0)["latency"]
    assert sum(v["samples"] for v in observed.values()) == 40
    assert live.quantile([float(v) for v in range(1, 101)], 0.95) == 95.0


def test_the_default_model_takes_what_the_rules_leave_but_never_sensitive_data() -> None:
    router = Router(config(on_empty="default", default_model="gpt-4o-mini"), sink=MemorySink())
    d = router.route("hello", {"capabilities": ["teleport"]}, now=0.0)
    assert (d.model, d.pmf, d.fallbacks) == ("gpt-4o-mini", (1.0,), ())
    assert d.reason.startswith("default model (rule capabilities left no model)")
    with pytest.raises(NoModelAllowed) as err:
        router.route("hello", {"capabilities": ["code"], "sensitive": True}, now=1.0)
    assert err.value.rule == "data_policy"
    reject = Router(config(), sink=MemorySink())
    with pytest.raises(NoModelAllowed):
        reject.route("hello", {"capabilities": ["teleport"]}, now=0.0)
