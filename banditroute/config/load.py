"""TOML text → Config: sections and keys by name, values coerced by each field's type, then checked.

A key's type decides what TOML value it accepts (ints are accepted for floats; a list of strings
for a tuple); a key with a `parse` hook (records.py) takes its value from the hook instead.

A user's file is read over the bundled one (`merge_over_bundled`): the keys it gives replace the
bundled keys one by one, and a `[[models]]` catalog it gives replaces the bundled catalog whole.
The environment (`BANDITROUTE_CONFIG`, `_HOST`, `_PORT`, `_DATA_DIR`) sits between the command line
and the file: `config_path` and `with_environment`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from banditroute.config.keys import ConfigError, parse_of, types_of
from banditroute.config.sections import Config, validate

CONFIG_ENV = "BANDITROUTE_CONFIG"
HOST_ENV = "BANDITROUTE_HOST"
PORT_ENV = "BANDITROUTE_PORT"
DATA_DIR_ENV = "BANDITROUTE_DATA_DIR"
_BUNDLED = "bundled default"


def default_config_text() -> str:
    return resources.files("banditroute").joinpath("data/default.toml").read_text(encoding="utf-8")


def load_config(path: str | Path | None = None) -> Config:
    """The bundled default when `path` is None, else the user's file read over it (`merge_over_bundled`)."""
    if path is None:
        return parse_config(default_config_text(), source=_BUNDLED)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    return parse_config(text, source=str(p), over_bundled=True)


def config_path(flag: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The file a command reads: `--config`, else `BANDITROUTE_CONFIG`, else None (the bundled one)."""
    return flag if flag is not None else environ.get(CONFIG_ENV) or None


def with_environment(config: Config, environ: Mapping[str, str] = os.environ) -> Config:
    """`BANDITROUTE_HOST`, `BANDITROUTE_PORT` and `BANDITROUTE_DATA_DIR` over the file's `[server]` keys.

    The command line's flags go over this result (flag > environment > file > default).
    """
    server = environment_server(environ)
    return config.with_overrides(server=server) if server else config


def environment_server(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The `[server]` keys the environment sets, checked."""
    server: dict[str, Any] = {}
    for env, key in ((HOST_ENV, "host"), (DATA_DIR_ENV, "data_dir")):
        value = environ.get(env)
        if value is not None:
            if not value.strip():
                raise ConfigError(f"{env} is set but empty")
            server[key] = value
    port = environ.get(PORT_ENV)
    if port is not None:
        if not port.strip().isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{PORT_ENV} must be a port number in 0..65535, not {port!r}")
        server["port"] = int(port)
    return server


def merge_over_bundled(raw: dict[str, Any], bundled: dict[str, Any]) -> dict[str, Any]:
    """A user's TOML tables over the bundled ones: a section's keys replace the bundled keys one by one
    (a key whose value is a table, such as `rules.tiers`, replaces it whole); `[[models]]` replaces
    the bundled catalog whole, so a catalog is never a mix of the two."""
    merged = dict(bundled)
    for name, value in raw.items():
        base = bundled.get(name)
        if name != "models" and isinstance(value, dict) and isinstance(base, dict):
            merged[name] = {**base, **value}
        else:
            merged[name] = value
    return merged


def parse_config(text: str, *, source: str = "config", over_bundled: bool = False) -> Config:
    """`text` alone (a key it leaves out takes its default), or with `over_bundled` read over the bundled file."""
    raw = _toml(text, source)
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known: {sorted(known)}")
    if over_bundled:
        raw = merge_over_bundled(raw, _toml(default_config_text(), _BUNDLED))
    return _config(raw, source)


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


def _config(raw: dict[str, Any], source: str) -> Config:
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
