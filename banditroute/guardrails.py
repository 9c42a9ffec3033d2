"""Hard rules: which models a request may go to at all. Pure and fast.

The bandit only ever sees the allowed set, so its logged probabilities are over that set.
Each rule excludes models with a reason; the first rule that empties the set is named in the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from banditroute.catalog import Catalog


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: tuple[str, ...]
    excluded: dict[str, str]  # model -> the rule that excluded it
    rules: tuple[str, ...]  # the rules that applied to this request


class NoModelAllowed(Exception):
    """The rules left no model for this request; `rule` is the one that emptied the set."""

    def __init__(self, rule: str, excluded: dict[str, str]):
        super().__init__(f"no model is allowed for this request: rule {rule!r} excluded the last candidates")
        self.rule = rule
        self.excluded = excluded


def allowed(
    catalog: Catalog,
    metadata: Mapping[str, Any],
    input_tokens: int,
    max_output_tokens: int | None,
) -> Verdict:
    candidates = list(catalog.names)
    excluded: dict[str, str] = {}
    rules: list[str] = []

    def apply(rule: str, keep: Any) -> None:
        rules.append(rule)
        kept = []
        for name in candidates:
            if keep(catalog[name]):
                kept.append(name)
            else:
                excluded[name] = rule
        if not kept:
            raise NoModelAllowed(rule, excluded)
        candidates[:] = kept

    required = metadata.get("capabilities")
    if required:
        need = frozenset(required)
        apply("capabilities", lambda m: need <= m.capabilities)

    total = input_tokens + (max_output_tokens or 0)
    if any(m.context_window < total for m in catalog.specs):
        apply("context_window", lambda m: m.context_window >= total)

    return Verdict(tuple(candidates), excluded, tuple(rules))


def restrict(verdict: Verdict, rule: str, keep: frozenset[str]) -> Verdict:
    """Apply one more rule, given as the set of models it keeps, to a verdict."""
    kept = tuple(m for m in verdict.allowed if m in keep)
    excluded = dict(verdict.excluded)
    excluded.update((m, rule) for m in verdict.allowed if m not in keep)
    if not kept:
        raise NoModelAllowed(rule, excluded)
    return Verdict(kept, excluded, (*verdict.rules, rule))
