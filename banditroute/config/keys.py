"""How a configuration key is written: one dataclass field with its type, default, doc and checks.

    port: int = key(8080, "port to bind", within(0, 65535))

The field's annotation is the key's type (a `Literal` for a choice, checked automatically); `doc` is
its line in docs/configuration.md; each check names what a valid value is, and the error message is
built from it ("server.port must be in 0..65535"). A key whose TOML form needs more than type
coercion (tables, "skip") names a `parse` hook. Nothing here knows a particular key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from functools import cache
from typing import Any, Literal, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key at fault."""


@dataclass(frozen=True, slots=True)
class Check:
    """A condition on one value; `says` completes "section.key must be ..."."""

    ok: Callable[[Any], bool]
    says: str


@dataclass(frozen=True, slots=True)
class Rule:
    """A condition across the keys of one section (or the whole file), with its whole message."""

    ok: Callable[[Any], bool]
    message: str


# A parse hook: (TOML value, source, "section.key") -> the field's value; raises ConfigError.
Parse = Callable[[Any, str, str], Any]


def key(default: Any, doc: str, *checks: Check, parse: Parse | None = None) -> Any:
    """A configuration key. Empty dicts are defaulted through a factory so no instance shares one."""
    metadata = {"doc": doc, "checks": checks, "parse": parse}
    if isinstance(default, dict):
        if default:
            raise TypeError("a table key defaults to an empty table")
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


def doc_of(f: Field[Any]) -> str:
    return str(f.metadata.get("doc", ""))


def checks_of(f: Field[Any]) -> tuple[Check, ...]:
    return tuple(f.metadata.get("checks", ()))


def parse_of(f: Field[Any]) -> Parse | None:
    return f.metadata.get("parse")


def default_of(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


@cache
def types_of(cls: type) -> dict[str, Any]:
    """The fields' annotations as types (the modules use `from __future__ import annotations`)."""
    return get_type_hints(cls)


def choices_of(tp: Any) -> tuple[str, ...] | None:
    """The choices of a `Literal` type, or of the items of `tuple[Literal[...], ...]`; None otherwise."""
    if get_origin(tp) is Literal:
        return get_args(tp)
    if get_origin(tp) is tuple and get_args(tp) and get_origin(get_args(tp)[0]) is Literal:
        return get_args(get_args(tp)[0])
    return None


def check_section(section: Any, name: str, source: str) -> None:
    """A section's choices and checks, key by key in field order, then its cross-key rules."""
    cls: type = type(section)
    types = types_of(cls)
    for f in fields(section):
        value = getattr(section, f.name)
        tp = types[f.name]
        choices = choices_of(tp)
        if choices is not None:
            listed = get_origin(tp) is tuple
            if not (set(value) <= set(choices) if listed else value in choices):
                raise ConfigError(f"{source}: {name}.{f.name} must be {'among' if listed else 'one of'} {choices}")
        for check in checks_of(f):
            if not check.ok(value):
                raise ConfigError(f"{source}: {name}.{f.name} must be {check.says}")
    for rule in getattr(section, "RULES", ()):
        if not rule.ok(section):
            raise ConfigError(f"{source}: {rule.message}")


def above(bound: float) -> Check:
    return Check(lambda v: v > bound, f"> {bound}")


def at_least(bound: float) -> Check:
    return Check(lambda v: v >= bound, f">= {bound}")


def within(low: float, high: float) -> Check:
    return Check(lambda v: low <= v <= high, f"in {low}..{high}")


# For durations, rates and money: a finite number (TOML's inf and nan are floats, too).
POSITIVE = Check(lambda v: math.isfinite(v) and v > 0, "> 0")
NON_NEGATIVE = Check(lambda v: math.isfinite(v) and v >= 0, ">= 0")
FINITE_NON_NEGATIVE = Check(NON_NEGATIVE.ok, "a finite number >= 0")
UNIT = within(0, 1)
