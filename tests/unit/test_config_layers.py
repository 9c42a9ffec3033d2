"""Where a setting comes from: a partial file over the bundled one, the environment over the file, the
flags over both; and the starter file `banditroute init` writes."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from banditroute.cli import main, server_url
from banditroute.config import (
    Config,
    ConfigError,
    config_path,
    default_config_text,
    load_config,
    parse_config,
    with_environment,
)
from banditroute.config.starter import provider_names, starter_config

BUNDLED = load_config()
PROVIDERS = Path(__file__).resolve().parents[2] / "examples" / "providers"

ONE_MODEL = """
[[models]]
name = "only"
input_price = 1.0
output_price = 2.0
context_window = 8000
"""


def load_config_text(text: str) -> Config:
    return parse_config(text, over_bundled=True)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "partial.toml"
    path.write_text(text)
    return path


def test_the_bundled_file_shows_the_defaults_and_adds_only_the_catalog() -> None:
    # So "a key left out takes the default" holds for a partial file, whose other keys come from the bundled one.
    for f in fields(Config):
        if f.name != "models":
            assert getattr(BUNDLED, f.name) == getattr(Config(), f.name), f.name
    assert len(BUNDLED.models) >= 2


def test_a_partial_file_keeps_the_bundled_catalog_and_replaces_only_its_keys(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, '[server]\nport = 9123\n[reward]\ncost_weight = 0.5\n[rules.tiers]\nfree = ["gpt-4o-mini"]\n')
    )
    assert (cfg.server.port, cfg.reward.cost_weight) == (9123, 0.5)
    assert cfg.server.host == BUNDLED.server.host and cfg.server.data_dir == BUNDLED.server.data_dir
    assert cfg.reward.latency_weight == BUNDLED.reward.latency_weight
    assert cfg.rules.tiers == {"free": ("gpt-4o-mini",)} and cfg.rules.pii_detection is BUNDLED.rules.pii_detection
    assert cfg.models == BUNDLED.models


def test_a_catalog_in_the_file_replaces_the_bundled_catalog_whole(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[server]\nport = 9124\n" + ONE_MODEL))
    assert [m.name for m in cfg.models] == ["only"]
    assert cfg.server.port == 9124 and cfg.policy == BUNDLED.policy


def test_unknown_sections_and_keys_stay_errors_that_name_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"partial.toml: unknown key server.prot; known: \["):
        load_config(write(tmp_path, "[server]\nprot = 9000\n"))
    with pytest.raises(ConfigError, match=r"partial.toml: unknown section\(s\) \['sever'\]"):
        load_config(write(tmp_path, "[sever]\nport = 9000\n"))
    with pytest.raises(ConfigError, match=r"partial.toml: \[server\] must be a table"):
        load_config(write(tmp_path, "server = 3\n"))
    with pytest.raises(ConfigError, match="rules.tiers.free names model"):  # the file's rule, the bundled catalog
        load_config(write(tmp_path, '[rules.tiers]\nfree = ["gpt-9"]\n'))


def test_the_environment_sits_between_the_flags_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 9125\nhost = "127.0.0.2"\n')
    assert config_path(None, {}) is None
    assert config_path(None, {"BANDITROUTE_CONFIG": str(path)}) == str(path)
    assert config_path("flag.toml", {"BANDITROUTE_CONFIG": str(path)}) == "flag.toml"
    file = load_config(config_path(None, {"BANDITROUTE_CONFIG": str(path)}))
    assert (file.server.host, file.server.port) == ("127.0.0.2", 9125)
    env = {"BANDITROUTE_HOST": "0.0.0.0", "BANDITROUTE_PORT": "9200", "BANDITROUTE_DATA_DIR": str(tmp_path / "d")}
    over = with_environment(file, env)
    assert (over.server.host, over.server.port, over.server.data_dir) == ("0.0.0.0", 9200, str(tmp_path / "d"))
    assert with_environment(file, {}) == file


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BANDITROUTE_PORT": "eighty"}, "BANDITROUTE_PORT must be a port number in 0..65535, not 'eighty'"),
        ({"BANDITROUTE_PORT": "70000"}, "BANDITROUTE_PORT must be a port number"),
        ({"BANDITROUTE_HOST": " "}, "BANDITROUTE_HOST is set but empty"),
    ],
)
def test_a_bad_environment_value_is_a_config_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_environment(BUNDLED, env)


def test_client_commands_find_the_server_where_the_environment_says() -> None:
    assert server_url({}) == "http://127.0.0.1:8080"
    assert server_url({"BANDITROUTE_PORT": "9300"}) == "http://127.0.0.1:9300"
    assert server_url({"BANDITROUTE_HOST": "10.1.2.3", "BANDITROUTE_PORT": "9301"}) == "http://10.1.2.3:9301"
    assert server_url({"BANDITROUTE_HOST": "0.0.0.0"}) == "http://127.0.0.1:8080"  # bound everywhere: loopback
    assert server_url({"BANDITROUTE_HOST": "::"}) == "http://[::1]:8080"


# -- banditroute init ---------------------------------------------------------------------------


def test_init_without_providers_writes_the_bundled_configuration(tmp_path: Path) -> None:
    out = tmp_path / "banditroute.toml"
    assert main(["init", "--out", str(out)]) == 0
    assert load_config(out) == BUNDLED
    assert out.read_text().startswith("# Written by `banditroute init`")


def test_init_with_providers_routes_to_their_models(tmp_path: Path) -> None:
    out = tmp_path / "banditroute.toml"
    assert main(["init", "--providers", "openai,anthropic,ollama", "--out", str(out)]) == 0
    cfg = load_config(out)
    examples = {}
    for stem in ("openai", "anthropic", "local"):
        for m in tomllib.loads((PROVIDERS / f"{stem}.toml").read_text())["models"]:
            examples[m["name"]] = m
    assert [m.name for m in cfg.models] == list(examples)  # the examples' models, the bundled ones gone
    for spec in cfg.models:
        assert spec.base_url == examples[spec.name]["base_url"]
        assert spec.api_key_env == examples[spec.name].get("api_key_env")
    assert cfg.reward == BUNDLED.reward and cfg.server == BUNDLED.server
    bundled = default_config_text()
    settings = bundled[: bundled.index("\n[[models]]\n")]  # the bundled file's settings, its comments included
    assert settings.strip() in out.read_text() and "[rules]" in settings


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine.toml"
    out.write_text("# my own\n")
    assert main(["init", "--out", str(out)]) == 2
    assert "exists; pass --force to overwrite it" in capsys.readouterr().err
    assert out.read_text() == "# my own\n"
    assert main(["init", "--providers", "openai", "--out", str(out), "--force"]) == 0
    assert load_config(out).models[0].base_url == "https://api.openai.com/v1"


def test_init_names_the_providers_it_knows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--providers", "openia", "--out", str(tmp_path / "x.toml")]) == 2
    err = capsys.readouterr().err
    assert "unknown provider 'openia'; known: aggregator, anthropic, local, openai" in err
    assert not (tmp_path / "x.toml").exists()


def test_every_shipped_provider_is_an_example_and_combines() -> None:
    assert provider_names() == sorted(p.stem for p in PROVIDERS.glob("*.toml"))
    text = starter_config(provider_names())
    tables = [line for line in text.splitlines() if line == "[[models]]"]
    assert (
        len(tables)
        == len(load_config_text(text).models)
        == sum(len(tomllib.loads((PROVIDERS / f"{n}.toml").read_text())["models"]) for n in provider_names())
    )
