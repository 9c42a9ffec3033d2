from __future__ import annotations

import math
import tomllib
from dataclasses import fields, replace
from pathlib import Path

import pytest

from banditroute.cli import main
from banditroute.config import Config, ConfigError, RewardConfig, default_config_text, load_config, parse_config
from banditroute.config.reference import render_reference
from banditroute.types import ModelSpec


def test_bundled_default_is_valid_and_realistic() -> None:
    cfg = load_config()
    assert cfg.server.port == 8080 and cfg.policy.exploration == "thompson"
    assert len(cfg.models) >= 4
    prices = sorted(m.output_price for m in cfg.models)
    assert prices[-1] >= 20 * max(prices[1], 0.01)  # from a small fast model to a frontier one
    assert max(m.context_window for m in cfg.models) >= 1_000_000
    assert any("code" in m.capabilities for m in cfg.models)
    assert "2025-06-01" in default_config_text()


def with_(text: str) -> str:
    return default_config_text() + "\n" + text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server\n", "not valid TOML"),
        ("[bogus]\n", "unknown section"),
        ("[[models]]\nname='x'\ninput_price=1\noutput_price=1\ncontext_window=0", "context_window"),
        ("[[models]]\nname='y'\ninput_price=-1\noutput_price=1\ncontext_window=5", "input_price"),
        ("[[models]]\nname='z'\noutput_price=1\ncontext_window=5", "missing required key 'input_price'"),
        ("[[models]]\nname='gpt-4o-mini'\ninput_price=1\noutput_price=1\ncontext_window=5", "duplicate"),
        ("[[models]]\nname='w'\ninput_price=1\noutput_price=1\ncontext_window=5\ncolour='red'", "unknown key"),
        ("[proxy.profiles.auto]\ntask='x'", "clash"),
        ("[proxy.profiles.codestral]\ntask='x'", "clash"),
        ("[proxy.profiles.p]\ntask={a=1}", "proxy.profiles.p.task"),
    ],
)
def test_bad_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(with_(text))


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("reward", {"cost_weight": -1.0}, "cost_weight"),
        ("reward", {"quality_rule": "random"}, "quality_rule"),
        ("reward", {"default_quality": 2.0}, "default_quality"),
        ("policy", {"exploration": "magic"}, "exploration"),
        ("server", {"port": 70000}, "port"),
        ("server", {"decision_ack": "later"}, "decision_ack"),
        ("server", {"write_linger_ms": 5000.0}, "write_linger_ms"),
    ],
)
def test_bad_values_are_refused(section: str, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config().with_overrides(**{section: values})


def test_wrong_types_and_skip() -> None:
    with pytest.raises(ConfigError, match="wrong type"):
        parse_config(default_config_text().replace("cost_weight = 0.1", 'cost_weight = "cheap"'))
    cfg = parse_config(default_config_text().replace("default_quality = 0.5", 'default_quality = "skip"'))
    assert cfg.reward.default_quality is None


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("proxy", {"total_deadline_s": 0.0}, "proxy.total_deadline_s"),
        ("proxy", {"attempt_timeout_s": -1.0}, "proxy.attempt_timeout_s"),
        ("judge", {"sample_rate": 1.5}, "judge.sample_rate"),
        ("judge", {"score_min": 5.0, "score_max": 5.0}, "judge.score_max"),
        ("judge", {"concurrency": 0}, "judge.concurrency"),
        ("judge", {"max_samples": 0}, "judge.max_samples"),
    ],
)
def test_bad_proxy_and_judge_values_are_refused(section: str, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config().with_overrides(**{section: values})


def test_proxy_profiles_load() -> None:
    cfg = parse_config(with_("[proxy.profiles.coding]\ntask = 'code'\ncapabilities = ['code']"))
    assert cfg.proxy.profiles == {"coding": {"task": "code", "capabilities": ["code"]}}


# -- one home per key: the bundled file, the reference and the fields agree ------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEFORE = Path(__file__).resolve().parent / "data" / "default_before_issue13.toml"


def test_the_bundled_file_loads_to_the_config_it_loaded_to_before_the_keys_moved() -> None:
    # The file as it was before issue 13 set most keys to their defaults; the slim one must not
    # change a single value but the two defaults issue 14 changed on purpose (the decomposed learner,
    # no invented quality).
    before = parse_config(BEFORE.read_text(encoding="utf-8"))
    assert (before.policy.exploration, before.reward.default_quality) == ("squarecb", 0.5)
    issue14 = replace(
        before,
        policy=replace(before.policy, exploration="thompson"),
        reward=replace(before.reward, default_quality=None),
    )
    assert issue14 == load_config()


def test_every_key_of_the_bundled_file_is_a_key_and_every_section_appears_in_it() -> None:
    text = default_config_text()
    raw = tomllib.loads(text)
    for name, section in raw.items():
        if name == "models":
            allowed = {f.name for f in fields(ModelSpec)}
            assert all(set(entry) <= allowed for entry in section)
            continue
        cls = type(getattr(Config(), name))
        assert set(section) <= {f.name for f in fields(cls)}, name
    # The file says each section appears at least as a commented header.
    for f in fields(Config):
        header = "[[models]]" if f.name == "models" else f"[{f.name}]"
        assert header in text, header


def test_the_configuration_reference_is_current() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_reference(), "run `make docs`"


def test_the_reference_names_every_key_once() -> None:
    text = render_reference()
    for f in fields(Config):
        cls = ModelSpec if f.name == "models" else type(getattr(Config(), f.name))
        for k in fields(cls):
            assert text.count(f"| `{k.name}` |") >= 1, f"{f.name}.{k.name}"
            assert k.metadata.get("doc"), f"{f.name}.{k.name} has no doc"


def test_the_cli_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--reference"]) == 0
    assert capsys.readouterr().out == render_reference()


def test_a_key_is_checked_by_its_type_and_checks() -> None:
    with pytest.raises(ConfigError, match=r"server.port must be in 0..65535"):
        parse_config(with_("").replace("port = 8080", "port = 70000"))
    with pytest.raises(ConfigError, match=r"policy.crossed_namespaces must be among \('w', 'x', 'u', 'c'\)"):
        load_config().with_overrides(policy={"crossed_namespaces": ("w", "q")})
    with pytest.raises(ConfigError, match="features.simhash_tables \\* simhash_bits must be at most 32"):
        load_config().with_overrides(features={"simhash_tables": 8, "simhash_bits": 8})
    # TOML's inf stays a valid interval where it was one before (a plain "> 0", not "finite").
    assert load_config().with_overrides(server={"checkpoint_interval_s": math.inf}).server.checkpoint_interval_s


def test_the_reward_weights_take_their_defaults_from_the_config() -> None:
    weights = RewardConfig().weights
    assert (weights.cost_weight, weights.latency_weight, weights.cost_scale, weights.latency_scale) == (
        0.1,
        0.0,
        0.001,
        10_000.0,
    )
