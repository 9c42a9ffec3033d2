"""The parts of the file that are more than a typed value: the catalog, API keys, the rule tables.

Each turns TOML data into the vocabulary of `banditroute.types` (ModelSpec, ApiKey) or a typed
table and names the entry at fault when it cannot. auth.py uses `api_key` and `parse_keys` for the
keys it reads from the environment, so a key is checked the same way wherever it comes from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from banditroute.config.keys import ConfigError
from banditroute.types import SCOPES, ApiKey, ModelSpec

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def parse_models(raw: Any, source: str = "config") -> tuple[ModelSpec, ...]:
    """The `[[models]]` tables, in their order."""
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: [[models]] must be an array of tables")
    allowed = {f.name for f in fields(ModelSpec)}
    specs = []
    for i, entry in enumerate(raw):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(allowed)}")
        for name in ("name", "input_price", "output_price", "context_window"):
            if name not in entry:
                raise ConfigError(f"{where}: missing required key {name!r}")
        name = entry["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ConfigError(f"{where}: name must be a non-empty string of at most 200 characters")
        where = f"{where} ({name})"
        caps = entry.get("capabilities", [])
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ConfigError(f"{where}: capabilities must be a list of strings")
        numbers: dict[str, float] = {}
        for k in ("input_price", "output_price", "latency_ttft_ms", "tokens_per_s"):
            if k in entry:
                v = entry[k]
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                    raise ConfigError(f"{where}: {k} must be a finite number >= 0")
                numbers[k] = float(v)
        ctx = entry["context_window"]
        if isinstance(ctx, bool) or not isinstance(ctx, int) or ctx <= 0:
            raise ConfigError(f"{where}: context_window must be a positive integer")
        sensitive = entry.get("allow_sensitive_data", False)
        if not isinstance(sensitive, bool):
            raise ConfigError(f"{where}: allow_sensitive_data must be true or false")
        strings: dict[str, str] = {}
        for k in ("base_url", "api_key_env", "upstream_model"):
            if k in entry:
                if not isinstance(entry[k], str):
                    raise ConfigError(f"{where}: {k} must be a string")
                strings[k] = entry[k]
        # The text fields by name (None, their default, when absent), so `numbers` fills the float fields only.
        specs.append(
            ModelSpec(
                name=name,
                context_window=ctx,
                capabilities=frozenset(caps),
                allow_sensitive_data=sensitive,
                base_url=strings.get("base_url"),
                api_key_env=strings.get("api_key_env"),
                upstream_model=strings.get("upstream_model"),
                **numbers,
            )
        )
    return tuple(specs)


def api_key(key_sha256: object, scopes: Iterable[str], where: str = "key") -> ApiKey:
    """One key from its hex digest; the message names `where`, never the key."""
    if not isinstance(key_sha256, str) or not _SHA256_HEX.fullmatch(key_sha256):
        raise ConfigError(f"{where}: key_sha256 must be 64 lower-case hex digits (sha256 of the key)")
    scope_set = frozenset(scopes)
    unknown = sorted(scope_set - set(SCOPES))
    if unknown or not scope_set:
        raise ConfigError(f"{where}: scopes must be a non-empty subset of {list(SCOPES)}; got {unknown}")
    return ApiKey(bytes.fromhex(key_sha256), scope_set)


def parse_keys(raw: Any, source: str = "config") -> tuple[ApiKey, ...]:
    """`[auth].keys`: a list of `{key_sha256 = "...", scopes = [...]}` tables."""
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: auth.keys must be a list of tables")
    out = []
    for i, entry in enumerate(raw):
        where = f"{source}: auth.keys[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"key_sha256", "scopes"}:
            raise ConfigError(f"{where} must be a table with exactly key_sha256 and scopes")
        scopes = entry["scopes"]
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ConfigError(f"{where}: scopes must be a list of strings")
        out.append(api_key(entry["key_sha256"], scopes, where))
    return tuple(out)


# -- parse hooks (keys.Parse: value, source, "section.key") --------------------------------------


def models(raw: Any, source: str, name: str) -> tuple[ModelSpec, ...]:
    return parse_models(raw, source)


def api_keys(raw: Any, source: str, name: str) -> tuple[ApiKey, ...]:
    return parse_keys(raw, source)


def quality_or_skip(raw: Any, source: str, name: str) -> float | None:
    """`reward.default_quality`: a number, or "skip" (None: learn nothing without a quality)."""
    if raw == "skip":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ConfigError(f"{source}: {name} has the wrong type ({type(raw).__name__}: {raw!r})")
    return float(raw)


def optional_int(raw: Any, source: str, name: str) -> int:
    """An integer key whose default is unset (TOML has no null: absent means unset)."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError(f"{source}: {name} has the wrong type ({type(raw).__name__}: {raw!r})")
    return raw


def _table(raw: Any, source: str, name: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return raw


def model_lists(raw: Any, source: str, name: str) -> dict[str, tuple[str, ...]]:
    """`[rules.tiers]`, `[rules.tenants]`: name -> a non-empty list of model names."""
    out = {}
    for k, v in _table(raw, source, name).items():
        if not isinstance(v, list) or not v or not all(isinstance(m, str) for m in v):
            raise ConfigError(f"{source}: {name}.{k} must be a non-empty list of model names")
        out[k] = tuple(v)
    return out


def budgets(raw: Any, source: str, name: str) -> dict[str, float]:
    """`[rules.budgets]`: tenant -> USD."""
    out = {}
    for k, v in _table(raw, source, name).items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"{source}: {name}.{k} must be a number of USD >= 0")
        out[k] = float(v)
    return out


def profiles(raw: Any, source: str, name: str) -> dict[str, dict[str, Any]]:
    """`[proxy.profiles.NAME]`: metadata values a request naming the profile gets."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{source}: [{name}] must hold one table per profile")
    for profile, meta in raw.items():
        for k, v in meta.items():
            ok = isinstance(v, str | bool | int | float) or (isinstance(v, list) and all(isinstance(s, str) for s in v))
            if not ok:
                raise ConfigError(
                    f"{source}: {name}.{profile}.{k} must be a string, number, boolean or list of strings"
                )
    return raw
