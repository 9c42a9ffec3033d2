"""TOML text → Config: sections and keys by name, values coerced by each field's type, then checked.

A key's type decides what TOML value it accepts (ints are accepted for floats; a list of strings
for a tuple); a key with a `parse` hook (records.py) takes its value from the hook instead.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from banditroute.config.keys import ConfigError, parse_of, types_of
from banditroute.config.sections import Config, validate


def default_config_text() -> str:
    return resources.files("banditroute").joinpath("data/default.toml").read_text(encoding="utf-8")


def load_config(path: str | Path | None = None) -> Config:
    """The bundled default when `path` is None, else the user's file."""
    if path is None:
        return parse_config(default_config_text(), source="bundled default")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    return parse_config(text, source=str(p))


def parse_config(text: str, *, source: str = "config") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for f in fields(Config):
        if f.name not in raw:
            continue
        parse = parse_of(f)
        value = raw[f.name]
        values[f.name] = (
            parse(value, source, f.name) if parse else _section(types_of(Config)[f.name], value, f.name, source)
        )
    cfg = Config(**values)
    validate(cfg, source)
    return cfg


def _section(cls: type, raw: Any, name: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    allowed = {f.name: f for f in fields(cls)}
    types = types_of(cls)
    values: dict[str, Any] = {}
    for k, value in raw.items():
        if k not in allowed:
            raise ConfigError(f"{source}: unknown key {name}.{k}; known: {sorted(allowed)}")
        parse = parse_of(allowed[k])
        where = f"{name}.{k}"
        values[k] = parse(value, source, where) if parse else _coerce(value, types[k], where, source)
    return cls(**values)


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """One TOML value as the key's type; a `Literal` is a string here (its choices are a check)."""
    if get_origin(tp) is Literal:
        tp = type(get_args(tp)[0])
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif get_origin(tp) is tuple:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        raise TypeError(f"{key}: a key of type {tp} needs a parse hook")
    if not ok:
        raise ConfigError(f"{source}: {key} has the wrong type ({type(value).__name__}: {value!r})")
    return value
