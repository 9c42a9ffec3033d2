"""The starter configuration `banditroute init` writes: the bundled settings, and a catalog of providers.

Without providers it is the bundled file itself. With providers (the catalog snippets shipped in
`banditroute/data/providers/`, the same files as `examples/providers/`) it is the bundled file's
settings followed by their `[[models]]`, which replace the bundled catalog. Either way the text is
loaded before it is returned, so what `init` writes is a file `serve --config` accepts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources

from banditroute.config.keys import ConfigError
from banditroute.config.load import default_config_text, parse_config

# Other names a user may know a provider file by.
ALIASES = {"ollama": "local", "vllm": "local", "openrouter": "aggregator"}


def provider_names() -> list[str]:
    """The shipped provider files, by name (`openai` for providers/openai.toml)."""
    folder = resources.files("banditroute").joinpath("data/providers")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def provider_text(name: str) -> str:
    """One provider file's text; `name` may be an alias (`ollama` is the local-server file)."""
    known = provider_names()
    stem = ALIASES.get(name, name)
    if stem not in known:
        choices = ", ".join(known + sorted(ALIASES))
        raise ConfigError(f"unknown provider {name!r}; known: {choices}")
    return resources.files("banditroute").joinpath(f"data/providers/{stem}.toml").read_text(encoding="utf-8")


def starter_config(providers: Sequence[str] = (), *, version: str = "") -> str:
    """The starter file's text; checked by loading it as `serve --config` would."""
    bundled = default_config_text()
    stems = list(dict.fromkeys(ALIASES.get(p, p) for p in providers))  # "ollama,vllm" is one file
    header = [f"# Written by `banditroute init{' --providers ' + ','.join(providers) if providers else ''}`"]
    if version:
        header[0] += f" (banditroute {version})"
    if not stems:
        text = "\n".join([*header, "", bundled])
    else:
        first_table = re.search(r"^\[\[models\]\]", bundled, re.M)
        assert first_table, "the bundled configuration has a catalog"
        settings = bundled[: first_table.start()].rstrip() + "\n"
        catalog = [provider_text(s).strip() + "\n" for s in stems]
        header += [
            "# The [[models]] below are the whole catalog: a catalog in this file replaces the bundled one.",
            "# The proxy routes to a model once the variable named by its api_key_env is set.",
        ]
        text = "\n".join([*header, "", settings, *catalog])
    parse_config(text, source="the starter configuration", over_bundled=True)
    return text
