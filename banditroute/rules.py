"""Hard rules: which models a request may go to at all. Pure and fast.

The bandit only ever sees the allowed set, so its logged probabilities are over that set.
Rules run in a fixed order (RULE_ORDER); each excludes models with its name, and the first rule
that empties the set is named in the error. What can be computed once per catalog and rule
configuration is, in `Rules.__init__`; a request costs a few set look-ups per rule that applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from banditroute import pii
from banditroute.catalog import Catalog
from banditroute.config import RulesConfig

RULE_ORDER = (
    "capabilities",
    "context_window",
    "data_policy",
    "tier",
    "tenant",
    "escalation",
    "budget",
    "latency",
    "cooldown",
)


@dataclass(frozen=True, slots=True)
class RuleRequest:
    """What the rules read from one request."""

    input_tokens: int
    max_output_tokens: int | None = None
    capabilities: frozenset[str] = frozenset()
    sensitive: bool = False
    sensitive_why: str = ""  # "tagged" or the kinds of personal data detected
    user_tier: str | None = None
    tenant: str | None = None
    max_latency_ms: float | None = None
    escalate_from: str | None = None


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the rules read from the router's online state at this instant."""

    cooling: frozenset[str] = frozenset()
    budget_exhausted: bool = False
    p95_ms: Callable[[str], float] | None = None


@dataclass(frozen=True, slots=True)
class Allowed:
    allowed: tuple[str, ...]
    excluded: dict[str, str]  # model -> the rule that excluded it
    rules: tuple[str, ...]  # the rules that applied to this request, in order
    notes: dict[str, str] = field(default_factory=dict)  # rule -> why it applied, for the reason


class NoModelAllowed(Exception):
    """The rules left no model for this request; `rule` is the one that emptied the set."""

    def __init__(self, rule: str, excluded: dict[str, str], rules: tuple[str, ...] = ()):
        super().__init__(f"no model is allowed for this request: rule {rule!r} excluded the last candidates")
        self.rule = rule
        self.excluded = excluded
        self.rules = rules


class UnknownModel(ValueError):
    """`escalate_from` names a model the catalog does not have."""


def tagged_sensitive(metadata: Mapping[str, Any]) -> bool | None:
    """The caller's own `metadata.sensitive` (it overrides detection); None when not given."""
    tagged = metadata.get("sensitive")
    return tagged if isinstance(tagged, bool) else None


def request_from(
    query: str,
    metadata: Mapping[str, Any],
    input_tokens: int,
    max_output_tokens: int | None,
    escalate_from: str | None,
    pii_detection: bool,
    detected: frozenset[str] | None = None,
) -> RuleRequest:
    """Read the rule inputs from a request; `metadata.sensitive` overrides detection either way.

    `detected`: the kinds of PII in `query` when the caller has scanned it already (the service scans
    a long query in steps, between other requests: pii.detect_steps).
    """
    tagged = tagged_sensitive(metadata)
    if tagged is not None:
        sensitive, why = tagged, "tagged"
    elif pii_detection:
        kinds = pii.detect(query) if detected is None else detected
        sensitive, why = bool(kinds), ("detected " + "+".join(sorted(kinds))) if kinds else ""
    else:
        sensitive, why = False, ""
    caps = metadata.get("capabilities")
    latency = metadata.get("max_latency_ms")
    return RuleRequest(
        input_tokens=input_tokens,
        max_output_tokens=max_output_tokens,
        capabilities=frozenset(caps) if isinstance(caps, list) else frozenset(),
        sensitive=sensitive,
        sensitive_why=why,
        user_tier=meta_text(metadata.get("user_tier")),
        tenant=meta_text(metadata.get("tenant")),
        max_latency_ms=float(latency) if isinstance(latency, int | float) and not isinstance(latency, bool) else None,
        escalate_from=escalate_from,
    )


def meta_text(value: Any) -> str | None:
    """A metadata value as the text a rule compares (None when absent)."""
    return None if value is None or isinstance(value, bool) else str(value)


class Rules:
    """The rules compiled for one catalog and one `[rules]` configuration."""

    __slots__ = (
        "catalog",
        "config",
        "names",
        "_caps",
        "_window",
        "_min_window",
        "_sensitive_ok",
        "_tiers",
        "_tenants",
        "_cheap",
        "_price",
    )

    def __init__(self, catalog: Catalog, config: RulesConfig):
        self.catalog = catalog
        self.config = config
        self.names = catalog.names
        self._caps = {m.name: m.capabilities for m in catalog.specs}
        self._window = {m.name: m.context_window for m in catalog.specs}
        self._min_window = min(self._window.values())
        self._sensitive_ok = frozenset(m.name for m in catalog.specs if m.allow_sensitive_data)
        self._tiers = {tier: frozenset(models) for tier, models in config.tiers.items()}
        self._tenants = {tenant: frozenset(models) for tenant, models in config.tenants.items()}
        self._cheap = frozenset(m.name for m in catalog.specs if m.output_price <= config.budget_price_ceiling)
        self._price = {m.name: m.output_price for m in catalog.specs}

    def price(self, model: str) -> float:
        return self._price[model]

    def sensitive_ok(self, model: str) -> bool:
        return model in self._sensitive_ok

    def evaluate(self, req: RuleRequest, live: LiveState, scope: tuple[str, frozenset[str]] | None = None) -> Allowed:
        """The allowed set, or NoModelAllowed naming the rule that emptied it.

        `scope`: a caller's own rule, (name, the models it keeps), applied first: the models outside
        it are no candidates at all, so a rule that then empties the set is named as the reason
        (a requested model in cooldown is refused by `cooldown`, not by the caller's rule).
        """
        candidates = list(self.names)
        excluded: dict[str, str] = {}
        rules: list[str] = []
        notes: dict[str, str] = {}

        def apply(rule: str, keep: Callable[[str], bool], note: str = "") -> None:
            rules.append(rule)
            if note:
                notes[rule] = note
            kept = []
            for name in candidates:
                if keep(name):
                    kept.append(name)
                else:
                    excluded[name] = rule
            if not kept:
                raise NoModelAllowed(rule, excluded, tuple(rules))
            candidates[:] = kept

        if scope is not None:
            apply(scope[0], scope[1].__contains__)

        if req.capabilities:
            need = req.capabilities
            caps = self._caps
            apply("capabilities", lambda m: need <= caps[m], ",".join(sorted(need)))

        total = req.input_tokens + (req.max_output_tokens or 0)
        if total > self._min_window:
            window = self._window
            apply("context_window", lambda m: window[m] >= total, f"{total} tokens")

        if req.sensitive:
            apply("data_policy", self._sensitive_ok.__contains__, req.sensitive_why)

        tier_models = self._tiers.get(req.user_tier) if req.user_tier is not None else None
        if tier_models is not None:
            apply("tier", tier_models.__contains__, str(req.user_tier))

        tenant_models = self._tenants.get(req.tenant) if req.tenant is not None else None
        if tenant_models is not None:
            apply("tenant", tenant_models.__contains__, str(req.tenant))

        if req.escalate_from is not None:
            if req.escalate_from not in self._price:
                raise UnknownModel(req.escalate_from)
            floor = self._price[req.escalate_from]
            price = self._price
            apply("escalation", lambda m: price[m] > floor, f"stronger than {req.escalate_from}")

        if live.budget_exhausted:
            apply("budget", self._cheap.__contains__, f"{req.tenant} over budget")

        if req.max_latency_ms is not None and live.p95_ms is not None:
            limit = req.max_latency_ms
            p95 = live.p95_ms
            apply("latency", lambda m: p95(m) <= limit, f"p95 <= {limit:g} ms")

        if not live.cooling.isdisjoint(candidates):
            cooling = live.cooling
            apply("cooldown", lambda m: m not in cooling)

        return Allowed(tuple(candidates), excluded, tuple(rules), notes)
