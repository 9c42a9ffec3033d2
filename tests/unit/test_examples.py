"""The provider catalogs in examples/providers load with the config loader, and the proxy accepts their models."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.api.chat import upstream_ready
from banditroute.config import Config, default_config_text, parse_config

PROVIDERS = Path(__file__).resolve().parents[2] / "examples" / "providers"
FILES = sorted(PROVIDERS.glob("*.toml"))


def with_catalog(*snippets: Path) -> Config:
    """The bundled config's other sections, with the snippets as its whole catalog."""
    default = default_config_text()
    settings = default[: default.index("[[models]]")]
    return parse_config(
        settings + "\n".join(p.read_text() for p in snippets), source="+".join(p.name for p in snippets)
    )


def test_every_provider_kind_has_an_example() -> None:
    assert [p.stem for p in FILES] == ["aggregator", "anthropic", "local", "openai"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_an_example_loads_and_its_models_are_proxied_once_the_key_is_set(path: Path) -> None:
    config = with_catalog(path)
    assert len(config.models) >= 2
    for spec in config.models:
        assert spec.base_url and spec.base_url.startswith(("https://", "http://127.0.0.1"))
        assert spec.upstream_model
        assert spec.output_price >= spec.input_price >= 0
        if spec.api_key_env is None:  # a local server that takes no key
            assert spec.base_url.startswith("http://127.0.0.1") and upstream_ready(spec, {})
            continue
        assert not upstream_ready(spec, {}), f"{spec.name} must wait for {spec.api_key_env}"
        assert upstream_ready(spec, {spec.api_key_env: "a-key"})


def test_the_examples_combine_into_one_catalog() -> None:
    config = with_catalog(*FILES)
    names = [m.name for m in config.models]
    assert len(names) == len(set(names)) == sum(len(with_catalog(p).models) for p in FILES)
