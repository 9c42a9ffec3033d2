from __future__ import annotations

import pytest

from banditroute.config import ConfigError, default_config_text, load_config, parse_config


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
