"""The model catalog: which models exist, what they cost, what they can do.

Parsed from the `[[models]]` tables of the configuration; the bundled default lives in
`banditroute/data/default.toml`.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from banditroute.types import ModelSpec


class CatalogError(ValueError):
    """A `[[models]]` entry that cannot be used; the message names the entry and key."""


class Catalog:
    """The models in their configured order, looked up by name."""

    __slots__ = ("specs", "by_name", "names")

    def __init__(self, specs: tuple[ModelSpec, ...] | list[ModelSpec]):
        self.specs = tuple(specs)
        self.by_name = {m.name: m for m in self.specs}
        self.names: tuple[str, ...] = tuple(m.name for m in self.specs)  # built once: read on every route

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __getitem__(self, name: str) -> ModelSpec:
        return self.by_name[name]

    def __len__(self) -> int:
        return len(self.specs)

    def to_json(self) -> list[dict[str, Any]]:
        out = []
        for m in self.specs:
            d = {f.name: getattr(m, f.name) for f in fields(ModelSpec)}
            d["capabilities"] = sorted(m.capabilities)
            d.pop("api_key_env", None)  # the name of a secret's variable is not for clients
            out.append(d)
        return out


def parse_models(raw: Any, source: str = "config") -> list[ModelSpec]:
    if not isinstance(raw, list):
        raise CatalogError(f"{source}: [[models]] must be an array of tables")
    allowed = {f.name for f in fields(ModelSpec)}
    specs = []
    for i, entry in enumerate(raw):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, dict):
            raise CatalogError(f"{where} must be a table")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise CatalogError(f"{where}: unknown key(s) {unknown}; known: {sorted(allowed)}")
        for key in ("name", "input_price", "output_price", "context_window"):
            if key not in entry:
                raise CatalogError(f"{where}: missing required key {key!r}")
        name = entry["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise CatalogError(f"{where}: name must be a non-empty string of at most 200 characters")
        caps = entry.get("capabilities", [])
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise CatalogError(f"{where} ({name}): capabilities must be a list of strings")
        numbers = {}
        for key in ("input_price", "output_price", "latency_ttft_ms", "tokens_per_s"):
            if key in entry:
                v = entry[key]
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                    raise CatalogError(f"{where} ({name}): {key} must be a finite number >= 0")
                numbers[key] = float(v)
        ctx = entry["context_window"]
        if isinstance(ctx, bool) or not isinstance(ctx, int) or ctx <= 0:
            raise CatalogError(f"{where} ({name}): context_window must be a positive integer")
        sensitive = entry.get("allow_sensitive_data", False)
        if not isinstance(sensitive, bool):
            raise CatalogError(f"{where} ({name}): allow_sensitive_data must be true or false")
        strings: dict[str, str] = {}
        for key in ("base_url", "api_key_env", "upstream_model"):
            if key in entry:
                if not isinstance(entry[key], str):
                    raise CatalogError(f"{where} ({name}): {key} must be a string")
                strings[key] = entry[key]
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
    return specs
