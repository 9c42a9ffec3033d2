"""The model catalog: which models exist, what they cost, what they can do.

The specs come from the `[[models]]` tables of the configuration (parsed by config/records.py);
the bundled default lives in `banditroute/data/default.toml`.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from banditroute.types import ModelSpec


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
