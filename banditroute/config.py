"""One home for everything tunable: load, validate and default the TOML configuration.

The key names are the user-facing contract (README, "Configuration"); each default is set once,
here, in the dataclasses below.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from banditroute.catalog import CatalogError, parse_models
from banditroute.types import ModelSpec, RewardWeights

EXPLORATIONS = ("squarecb", "epsilon", "softmax", "bag", "cover", "regcb", "regcbopt", "greedy")
QUALITY_RULES = ("first", "last")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the key at fault."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "var"
    max_body_bytes: int = 8_000_000
    max_query_chars: int = 4_000_000  # about 1M tokens: the largest context windows
    checkpoint_interval_s: float = 30.0
    expire_interval_s: float = 1.0
    write_batch_max: int = 1024
    max_pending: int = 1_000_000


@dataclass(frozen=True, slots=True)
class RewardConfig:
    cost_weight: float = 0.1
    latency_weight: float = 0.0
    cost_scale: float = 0.001
    latency_scale: float = 10_000.0
    reward_wait_s: float = 600.0
    default_quality: float | None = 0.5  # None: learn nothing from an event without quality
    quality_rule: str = "first"
    default_output_tokens: int = 256  # cost estimate when neither cost nor tokens arrive

    @property
    def weights(self) -> RewardWeights:
        return RewardWeights(self.cost_weight, self.latency_weight, self.cost_scale, self.latency_scale)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    exploration: str = "squarecb"
    gamma_scale: float = 10.0  # squarecb, regcb
    gamma_exponent: float = 0.5
    epsilon: float = 0.05  # epsilon, bag
    softmax_lambda: float = 10.0
    bag_size: int = 5
    cover_size: int = 3
    bits: int = 20
    learning_rate: float = 0.5
    power_t: float = 0.5
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeaturesConfig:
    max_words: int = 256  # tokens read from the query; longer queries are cut for featurizing only
    bigrams: bool = True
    metadata_keys: tuple[str, ...] = ("user_tier", "channel", "task", "tenant", "language")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The multi-process mode (`serve --workers N`): serving processes plus one learner over the log."""

    workers: int = 1  # serving processes; 1 serves and learns in one process
    learner_poll_s: float = 0.05  # how often the learner reads new decisions and feedback from the log
    publish_interval_s: float = 1.0  # the learner publishes a policy snapshot at most this often
    reload_interval_s: float = 0.5  # how often a serving process looks for a newer snapshot


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    models: tuple[ModelSpec, ...] = ()
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def with_overrides(self, **sections: dict[str, Any]) -> Config:
        """A copy with some keys of some sections replaced, validated like a file."""
        updated = {name: replace(getattr(self, name), **values) for name, values in sections.items()}
        cfg = replace(self, **updated)
        validate(cfg)
        return cfg


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
    known = {"server", "reward", "policy", "features", "models", "cluster"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known: {sorted(known)}")
    reward_raw = dict(raw.get("reward", {}))
    if reward_raw.get("default_quality") == "skip":
        reward_raw["default_quality"] = None
    cfg = Config(
        server=_section(ServerConfig, raw.get("server", {}), "server", source),
        reward=_section(RewardConfig, reward_raw, "reward", source),
        policy=_section(PolicyConfig, raw.get("policy", {}), "policy", source),
        features=_section(FeaturesConfig, raw.get("features", {}), "features", source),
        models=_models(raw.get("models", []), source),
        cluster=_section(ClusterConfig, raw.get("cluster", {}), "cluster", source),
    )
    validate(cfg, source)
    return cfg


def _models(raw: Any, source: str) -> tuple[ModelSpec, ...]:
    try:
        return tuple(parse_models(raw, source))
    except CatalogError as exc:
        raise ConfigError(str(exc)) from None


def _section(cls: type, raw: Any, name: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    allowed = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in allowed:
            raise ConfigError(f"{source}: unknown key {name}.{key}; known: {sorted(allowed)}")
        if value is None and "None" in str(allowed[key].type):
            values[key] = None
            continue
        default = getattr(cls(), key)
        values[key] = _coerce(value, default, f"{name}.{key}", source)
    return cls(**values)


def _coerce(value: Any, default: Any, key: str, source: str) -> Any:
    """Type-check one value against its default's type (ints are accepted for floats)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float) or default is None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if ok:
            value = tuple(value)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{source}: {key} has the wrong type ({type(value).__name__}: {value!r})")
    return value


def validate(cfg: Config, source: str = "config") -> None:
    s, r, p = cfg.server, cfg.reward, cfg.policy
    checks = [
        (0 <= s.port <= 65535, "server.port must be in 0..65535"),
        (s.max_body_bytes > 0, "server.max_body_bytes must be > 0"),
        (s.max_query_chars > 0, "server.max_query_chars must be > 0"),
        (s.checkpoint_interval_s > 0, "server.checkpoint_interval_s must be > 0"),
        (s.expire_interval_s > 0, "server.expire_interval_s must be > 0"),
        (s.write_batch_max > 0, "server.write_batch_max must be > 0"),
        (s.max_pending > 0, "server.max_pending must be > 0"),
        (_finite_nonneg(r.cost_weight), "reward.cost_weight must be a finite number >= 0"),
        (_finite_nonneg(r.latency_weight), "reward.latency_weight must be a finite number >= 0"),
        (_finite_pos(r.cost_scale), "reward.cost_scale must be > 0"),
        (_finite_pos(r.latency_scale), "reward.latency_scale must be > 0"),
        (_finite_nonneg(r.reward_wait_s), "reward.reward_wait_s must be >= 0"),
        (r.default_quality is None or 0.0 <= r.default_quality <= 1.0,
         'reward.default_quality must be in 0..1 or "skip"'),
        (r.quality_rule in QUALITY_RULES, f"reward.quality_rule must be one of {QUALITY_RULES}"),
        (r.default_output_tokens >= 0, "reward.default_output_tokens must be >= 0"),
        (p.exploration in EXPLORATIONS, f"policy.exploration must be one of {EXPLORATIONS}"),
        (0.0 <= p.epsilon <= 1.0, "policy.epsilon must be in 0..1"),
        (_finite_pos(p.gamma_scale), "policy.gamma_scale must be > 0"),
        (p.bag_size >= 1 and p.cover_size >= 1, "policy.bag_size and policy.cover_size must be >= 1"),
        (1 <= p.bits <= 30, "policy.bits must be in 1..30"),
        (_finite_pos(p.learning_rate), "policy.learning_rate must be > 0"),
        (cfg.features.max_words > 0, "features.max_words must be > 0"),
        (cfg.cluster.workers >= 1, "cluster.workers must be >= 1"),
        (_finite_pos(cfg.cluster.learner_poll_s), "cluster.learner_poll_s must be > 0"),
        (_finite_pos(cfg.cluster.publish_interval_s), "cluster.publish_interval_s must be > 0"),
        (_finite_pos(cfg.cluster.reload_interval_s), "cluster.reload_interval_s must be > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")
    names = [m.name for m in cfg.models]
    if not names:
        raise ConfigError(f"{source}: the catalog needs at least one [[models]] entry")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: duplicate model name(s) {duplicates}")


def _finite_nonneg(v: float) -> bool:
    return math.isfinite(v) and v >= 0


def _finite_pos(v: float) -> bool:
    return math.isfinite(v) and v > 0
