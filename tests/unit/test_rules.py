"""Every rule alone and in combination, table-driven, against the bundled catalog. Pure: no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.catalog import Catalog
from banditroute.config import ConfigError, RulesConfig, load_config, parse_config
from banditroute.rules import LiveState, NoModelAllowed, RuleRequest, Rules, UnknownModel, request_from
from tests.conftest import config_text

CONFIG = load_config()
CATALOG = Catalog(CONFIG.models)
ALL = set(CATALOG.names)
CODE = {"codestral", "gpt-4.1", "claude-sonnet-4", "claude-opus-4"}
FREE = ("gpt-4.1-nano", "gpt-4o-mini", "claude-3-5-haiku", "llama-3.1-8b-onprem")
UNDER_1_USD = {"gpt-4.1-nano", "gpt-4o-mini", "codestral", "llama-3.1-8b-onprem"}  # output price <= 1.0
P95 = {
    "gpt-4.1-nano": 400.0,
    "gpt-4o-mini": 700.0,
    "claude-3-5-haiku": 1200.0,
    "codestral": 900.0,
    "gpt-4.1": 2500.0,
    "claude-sonnet-4": 4000.0,
    "claude-opus-4": 9000.0,
    "llama-3.1-8b-onprem": 600.0,
}
RULES = RulesConfig(
    tiers={"free": FREE},
    tenants={"acme": ("gpt-4.1", "claude-sonnet-4", "llama-3.1-8b-onprem")},
    budgets={"acme": 10.0},
    budget_price_ceiling=1.0,
)

# (case, request fields, live state fields, expected allowed set or the rule that empties it)
CASES = [
    ("nothing applies", {}, {}, ALL),
    ("capabilities: code", {"capabilities": frozenset({"code"})}, {}, CODE),
    (
        "capabilities: vision+code",
        {"capabilities": frozenset({"vision", "code"})},
        {},
        {"gpt-4.1", "claude-sonnet-4", "claude-opus-4"},
    ),
    ("capabilities: none has it", {"capabilities": frozenset({"teleport"})}, {}, "capabilities"),
    ("context: 150k prompt", {"input_tokens": 150_000}, {}, ALL - {"gpt-4o-mini", "llama-3.1-8b-onprem"}),
    (
        "context: prompt + output",
        {"input_tokens": 100_000, "max_output_tokens": 50_000},
        {},
        ALL - {"gpt-4o-mini", "llama-3.1-8b-onprem"},
    ),
    ("context: 300k prompt goes long", {"input_tokens": 300_000}, {}, {"gpt-4.1-nano", "gpt-4.1"}),
    ("context: fits nothing", {"input_tokens": 2_000_000}, {}, "context_window"),
    ("data policy", {"sensitive": True}, {}, {"llama-3.1-8b-onprem"}),
    ("data policy + code", {"sensitive": True, "capabilities": frozenset({"code"})}, {}, "data_policy"),
    ("tier free", {"user_tier": "free"}, {}, set(FREE)),
    ("tier not configured", {"user_tier": "gold"}, {}, ALL),
    ("tier free + code", {"user_tier": "free", "capabilities": frozenset({"code"})}, {}, "tier"),
    ("tier free + sensitive", {"user_tier": "free", "sensitive": True}, {}, {"llama-3.1-8b-onprem"}),
    ("tenant", {"tenant": "acme"}, {}, {"gpt-4.1", "claude-sonnet-4", "llama-3.1-8b-onprem"}),
    ("tenant + tier", {"tenant": "acme", "user_tier": "free"}, {}, {"llama-3.1-8b-onprem"}),
    ("tenant + tier + code", {"tenant": "acme", "user_tier": "free", "capabilities": frozenset({"code"})}, {}, "tier"),
    (
        "escalation",
        {"escalate_from": "gpt-4o-mini"},
        {},
        {"claude-3-5-haiku", "codestral", "gpt-4.1", "claude-sonnet-4", "claude-opus-4"},
    ),
    ("escalation from the top", {"escalate_from": "claude-opus-4"}, {}, "escalation"),
    ("escalation + tier free", {"escalate_from": "gpt-4o-mini", "user_tier": "free"}, {}, {"claude-3-5-haiku"}),
    ("budget spent", {"tenant": "acme"}, {"budget_exhausted": True}, {"llama-3.1-8b-onprem"}),
    ("budget spent, no tenant rule", {"tenant": "globex"}, {"budget_exhausted": True}, UNDER_1_USD),
    (
        "budget spent + vision",
        {"capabilities": frozenset({"vision"})},
        {"budget_exhausted": True},
        {"gpt-4.1-nano", "gpt-4o-mini"},
    ),
    ("budget spent + escalation", {"escalate_from": "gpt-4o-mini"}, {"budget_exhausted": True}, {"codestral"}),
    (
        "latency 1000 ms",
        {"max_latency_ms": 1000.0},
        {"p95_ms": P95.__getitem__},
        {"gpt-4.1-nano", "gpt-4o-mini", "codestral", "llama-3.1-8b-onprem"},
    ),
    ("latency 100 ms", {"max_latency_ms": 100.0}, {"p95_ms": P95.__getitem__}, "latency"),
    (
        "latency + code",
        {"max_latency_ms": 3000.0, "capabilities": frozenset({"code"})},
        {"p95_ms": P95.__getitem__},
        {"codestral", "gpt-4.1"},
    ),
    ("cooldown", {}, {"cooling": frozenset({"gpt-4o-mini", "gpt-4.1-nano"})}, ALL - {"gpt-4o-mini", "gpt-4.1-nano"}),
    ("cooldown of the only allowed", {"sensitive": True}, {"cooling": frozenset({"llama-3.1-8b-onprem"})}, "cooldown"),
    (
        "cooldown + latency + budget",
        {"max_latency_ms": 800.0},
        {"cooling": frozenset({"gpt-4.1-nano"}), "budget_exhausted": True, "p95_ms": P95.__getitem__},
        {"gpt-4o-mini", "llama-3.1-8b-onprem"},
    ),
    (
        "everything at once",
        {
            "capabilities": frozenset({"tools"}),
            "input_tokens": 1000,
            "user_tier": "free",
            "tenant": "acme",
            "max_latency_ms": 800.0,
        },
        {"budget_exhausted": True, "p95_ms": P95.__getitem__, "cooling": frozenset({"gpt-4.1"})},
        {"llama-3.1-8b-onprem"},
    ),
]


@pytest.mark.parametrize(("case", "request_fields", "live_fields", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rules(case: str, request_fields: dict, live_fields: dict, expected: set[str] | str) -> None:
    rules = Rules(CATALOG, RULES)
    req = RuleRequest(**{"input_tokens": 20, **request_fields})
    live = LiveState(**live_fields)
    if isinstance(expected, str):
        with pytest.raises(NoModelAllowed) as err:
            rules.evaluate(req, live)
        assert err.value.rule == expected
        assert set(err.value.excluded) == ALL, "every model is accounted for with the rule that excluded it"
        assert err.value.rules[-1] == expected
        return
    verdict = rules.evaluate(req, live)
    assert set(verdict.allowed) == expected
    assert set(verdict.excluded) == ALL - expected
    assert set(verdict.excluded.values()) <= set(verdict.rules)
    assert list(verdict.allowed) == [m for m in CATALOG.names if m in expected]  # catalog order kept


def test_each_model_is_excluded_by_the_first_rule_that_drops_it() -> None:
    verdict = Rules(CATALOG, RULES).evaluate(
        RuleRequest(20, capabilities=frozenset({"vision"}), user_tier="free"), LiveState()
    )
    assert verdict.rules == ("capabilities", "tier")
    assert verdict.excluded == {
        "codestral": "capabilities",
        "llama-3.1-8b-onprem": "capabilities",
        "gpt-4.1": "tier",
        "claude-sonnet-4": "tier",
        "claude-opus-4": "tier",
    }
    assert verdict.notes == {"capabilities": "vision", "tier": "free"}


def test_unknown_escalation_source() -> None:
    with pytest.raises(UnknownModel):
        Rules(CATALOG, RULES).evaluate(RuleRequest(20, escalate_from="gpt-9"), LiveState())


SENSITIVITY = [
    ("reach me at jane.doe@northwind-traders.de", {}, True, True),
    ("reach me at jane.doe@northwind-traders.de", {"sensitive": False}, True, False),  # the tag overrides detection
    ("what is the boiling point of water?", {"sensitive": True}, True, True),
    ("what is the boiling point of water?", {}, True, False),
    ("reach me at jane.doe@northwind-traders.de", {}, False, False),  # detection turned off
]


@pytest.mark.parametrize(("query", "meta", "detection", "sensitive"), SENSITIVITY)
def test_sensitivity_tag_and_detection(query: str, meta: dict, detection: bool, sensitive: bool) -> None:
    req = request_from(query, meta, 10, None, None, pii_detection=detection)
    assert req.sensitive is sensitive
    if sensitive:
        assert req.sensitive_why == ("tagged" if "sensitive" in meta else "detected email")


def test_request_fields_are_read_from_metadata() -> None:
    req = request_from(
        "hi",
        {"capabilities": ["code"], "user_tier": "pro", "tenant": 42, "max_latency_ms": 1500, "conversation_id": "c1"},
        7,
        100,
        "gpt-4o-mini",
        pii_detection=True,
    )
    assert req == RuleRequest(7, 100, frozenset({"code"}), False, "", "pro", "42", 1500.0, "gpt-4o-mini")


def with_rules(text: str) -> str:
    return config_text(rules=text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rules.tiers]\nfree = ['gpt-5']", r"rules.tiers.free names model\(s\) not in the catalog: \['gpt-5'\]"),
        ("[rules.tenants]\nacme = []", "rules.tenants.acme must be a non-empty list of model names"),
        ("[rules.tenants]\nacme = 'gpt-4.1'", "rules.tenants.acme must be a non-empty list"),
        ("[rules.budgets]\nacme = -5", "rules.budgets.acme must be a number of USD >= 0"),
        ("[rules.budgets]\nacme = 'lots'", "rules.budgets.acme"),
        ("[rules]\ntiers = 3", r"\[rules.tiers\] must be a table"),
        ("[rules]\non_empty = 'shrug'", "rules.on_empty must be one of"),
        ("[rules]\non_empty = 'default'", "rules.default_model must name a model"),
        ("[rules]\non_empty = 'default'\ndefault_model = 'gpt-5'", "rules.default_model names model"),
        ("[rules]\ncold_start_share = 1.5", "rules.cold_start_share must be in 0..1"),
        ("[rules]\ncooldown_failures = 0", "rules.cooldown_failures must be >= 1"),
        ("[rules]\nlatency_min_samples = 500", "rules.latency_min_samples must be in 1..rules.latency_window"),
        ("[rules]\nbudget_period_s = 0", "rules.budget_period_s must be > 0"),
        ("[rules]\npii_detection = 'yes'", "rules.pii_detection has the wrong type"),
        ("[rules]\ncolour = 'red'", "unknown key rules.colour"),
    ],
)
def test_bad_rules_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(with_rules(text))


def test_rules_config_example_loads() -> None:
    cfg = parse_config(
        with_rules(
            "[rules]\non_empty = 'default'\ndefault_model = 'gpt-4o-mini'\n"
            "[rules.tiers]\nfree = ['gpt-4o-mini', 'gpt-4.1-nano']\n[rules.budgets]\nacme = 25\n"
        )
    )
    assert cfg.rules.tiers == {"free": ("gpt-4o-mini", "gpt-4.1-nano")}
    assert cfg.rules.budgets == {"acme": 25.0} and cfg.rules.default_model == "gpt-4o-mini"


def test_the_documented_rules_example_is_a_valid_config() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    example = page[page.index("```toml") + len("```toml") : page.index("```\n", page.index("```toml") + 7)]
    cfg = parse_config(with_rules(example))
    assert cfg.rules.tiers["free"] and cfg.rules.budgets == {"acme": 50.0}
