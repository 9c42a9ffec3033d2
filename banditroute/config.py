"""One home for everything tunable: load, validate and default the TOML configuration.

The key names are the user-facing contract (README, "Configuration"); each default is set once,
here, in the dataclasses below.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from banditroute.auth import ApiKey, AuthConfigError, is_loopback, parse_keys
from banditroute.catalog import CatalogError, parse_models
from banditroute.types import ModelSpec, RewardWeights

EXPLORATIONS = ("thompson", "squarecb", "epsilon", "softmax", "bag", "cover", "regcb", "regcbopt", "greedy")
QUALITY_RULES = ("first", "last")
AUTH_MODES = ("auto", "on", "off")
ON_EMPTY = ("reject", "default")
SHARED_NAMESPACES = ("w", "x", "u", "c")  # the request's VW namespaces (features.py)
SIMHASH_MAX_BITS = 32  # features.simhash_tables * simhash_bits: the bits of one 32-bit word hash
# [rules] sub-tables: name -> list of model names (tiers, tenants) or USD (budgets).
_RULE_TABLES = ("tiers", "tenants", "budgets")


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
    max_write_queue: int = 100_000  # records waiting for the writer; beyond, /route and /reward answer 503
    max_headers: int = 64
    read_timeout_s: float = 30.0  # a request body must arrive within this, else 408
    decision_ack: str = "commit"  # /route answers after its decision is committed; "enqueue": after it is queued
    write_linger_ms: float = 2.0  # a batch nobody waits for gathers records this long before its commit


@dataclass(frozen=True, slots=True)
class RewardConfig:
    cost_weight: float = 0.1
    latency_weight: float = 0.0
    cost_scale: float = 0.001
    latency_scale: float = 10_000.0
    reward_wait_s: float = 600.0
    default_quality: float | None = None  # None: learn no quality from an event without one
    quality_rule: str = "first"
    default_output_tokens: int = 256  # cost estimate when neither cost nor tokens arrive
    max_parts_per_event: int = 32

    @property
    def weights(self) -> RewardWeights:
        return RewardWeights(self.cost_weight, self.latency_weight, self.cost_scale, self.latency_scale)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    exploration: str = "thompson"  # the decomposed learner (exploration.py); the others: VW learns the reward
    gamma_scale: float = 100.0  # squarecb, regcb
    gamma_exponent: float = 0.5
    epsilon: float = 0.05  # epsilon, bag
    softmax_lambda: float = 10.0
    bag_size: int = 5
    cover_size: int = 3
    bits: int = 20
    learning_rate: float = 0.5
    power_t: float = 0.5
    attributes: bool = True  # the catalog attributes as a linear prior shared by models of a class
    cross_attributes: bool = False  # cross the catalog attributes, not only the model id, with the request
    min_learn_probability: float = 0.0  # updates weigh 1 / max(p, this): clipped importance weights
    crossed_namespaces: tuple[str, ...] = ("w", "x", "u", "c")  # request namespaces crossed with the model
    extra_args: tuple[str, ...] = ()
    # -- the decomposed learner (exploration = "thompson"; issue 14) --
    baseline_model: str = ""  # the team's default model the budget is kept against; "": the best on the evals
    exploration_budget: float = 0.05  # share of the baseline's estimated reward exploration may cost
    thompson_draws: int = 64  # joint draws the pmf is the share of (its resolution: 1 / draws)
    residual: str = "ridge"  # the contextual residual: "ridge" (numpy, residual.py) or "vw" (VW regression)
    residual_dims: int = 128  # ridge: hashed feature buckets (memory dims^2 floats per model)
    residual_strength: float = 10.0  # ridge: the L2 strength, in unit-length rows


@dataclass(frozen=True, slots=True)
class FeaturesConfig:
    max_words: int = 64  # tokens read from the query; longer queries are cut for featurizing only
    bigrams: bool = False
    shape_numbers: bool = False  # words with digits become their shape (#num, #hex, #id)
    char_ngrams: int = 0  # n of the character n-grams (namespace c); 0: none
    char_window: int = 128  # characters read for the character n-grams
    simhash_tables: int = 0  # SimHash buckets of the words in namespace x (coarse, task-like); 0: none
    simhash_bits: int = 4  # bits per SimHash table (2**bits buckets each)
    metadata_keys: tuple[str, ...] = (
        "user_tier",
        "channel",
        "task",
        "tenant",
        "language",
        "turns",
        "system_prompt",
        "tools",
        "response_format",
    )
    # -- the whole prompt (issue 14) --
    tail_words: int = 64  # also the last words of a query longer than `max_words` (where its question often is)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The OpenAI-compatible proxy (`/v1/chat/completions`)."""

    total_deadline_s: float = 120.0  # first attempt to a committed answer, fallbacks included
    attempt_timeout_s: float = 60.0  # an attempt not answering by then (streamed: no first chunk) is abandoned
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0  # longest silence between two chunks of an upstream answer
    max_connections: int = 100  # pooled connections to all upstreams together
    max_response_bytes: int = 32_000_000  # a non-streaming upstream answer larger than this fails
    # profile name -> metadata merged into the routing metadata of requests that name it as `model`
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


DEFAULT_RUBRIC = (
    "You are grading an AI assistant's answer to a user. Judge helpfulness, correctness and whether it "
    "follows the user's instructions; ignore style unless it hurts clarity. Reply with a JSON object "
    'and nothing else: {"score": N, "reason": "one sentence"}, where N is an integer from 1 (useless '
    "or wrong) to 10 (excellent)."
)


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """The LLM-as-judge worker (`banditroute judge`) and the proxy's sampling for it."""

    endpoint: str = ""  # OpenAI-compatible API root, e.g. http://host:port/v1; "" = no judge
    model: str = ""
    api_key_env: str = ""  # name of the environment variable holding the judge's key; "" = none
    sample_rate: float = 0.0  # fraction of completed proxy events kept for judging
    rubric: str = DEFAULT_RUBRIC
    score_min: float = 1.0  # the rubric's scale, mapped linearly onto quality 0..1
    score_max: float = 10.0
    concurrency: int = 4
    rate_limit_per_s: float = 5.0  # judge requests started per second at most
    max_retries: int = 3  # per sample, for failed calls and malformed answers
    backoff_s: float = 1.0  # first retry delay; doubles each retry
    max_spend_usd: float = 5.0  # the worker stops judging once its recorded spend reaches this
    input_price: float = 0.0  # the judge model's USD per 1M tokens, for the spend
    output_price: float = 0.0
    max_output_tokens: int = 200
    timeout_s: float = 60.0
    delay_s: float = 0.0  # a sample is judged only this long after its event (users answer first)
    retention_s: float = 7 * 86_400.0  # samples older than this are deleted
    max_samples: int = 10_000  # samples kept at most; the oldest go first
    max_sample_chars: int = 32_000  # prompt and response are each cut to this length
    poll_interval_s: float = 1.0
    service_url: str = ""  # where the worker posts /reward; "" = http://server.host:server.port


@dataclass(frozen=True, slots=True)
class AuthConfig:
    mode: str = "auto"  # "auto": on unless the server binds a loopback address with no keys set
    keys: tuple[ApiKey, ...] = ()
    route_rate_per_s: float = 1000.0  # per API key; 0: no limit
    reward_rate_per_s: float = 2000.0
    rate_burst_s: float = 2.0  # a bucket holds this many seconds of its rate
    rate_max_clients: int = 10_000

    def enabled(self, host: str) -> bool:
        if self.mode == "auto":
            return bool(self.keys) or not is_loopback(host)
        return self.mode == "on"


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """The hard rules and the model lifecycle (README, "Rules")."""

    pii_detection: bool = True  # built-in detection of obvious personal data in the query
    on_empty: str = "reject"  # when the rules leave no model: "reject" (422) or "default"
    default_model: str = ""  # the model used with on_empty = "default"
    tiers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user_tier -> allowed models
    tenants: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tenant -> allowed models
    budgets: dict[str, float] = field(default_factory=dict)  # tenant -> USD per budget period
    budget_period_s: float = 86_400.0
    budget_price_ceiling: float = 1.0  # USD per 1M output tokens allowed once a budget is spent
    latency_window: int = 200  # latest observed latencies kept per model for the p95
    latency_min_samples: int = 20  # below this, the catalog's latency prior stands in for the p95
    cooldown_failures: int = 3  # failures within cooldown_window_s that start a cooldown
    cooldown_window_s: float = 60.0
    cooldown_s: float = 60.0
    cold_start_share: float = 0.05  # minimum probability of a model with too few rewards
    cold_start_rewards: int = 20
    sticky_conversations: bool = True
    sticky_ttl_s: float = 3600.0
    sticky_max_conversations: int = 100_000
    escalation: bool = True  # accept `escalate_from` on /route


@dataclass(frozen=True, slots=True)
class AdminConfig:
    # Hex SHA-256 of the admin key (only the hash lives in the file). Empty: take the key from the
    # environment variable BANDITROUTE_ADMIN_KEY; with neither, the admin endpoints are disabled.
    key_sha256: str = ""


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    interval_s: float = 5.0  # width of one time-series bucket
    history: int = 360  # buckets kept (360 x 5 s = 30 minutes)
    recent_decisions: int = 50  # decisions listed with their reasons
    poll_interval_s: float = 2.0  # how often the page asks for new data


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
    rules: RulesConfig = field(default_factory=RulesConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
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
    known = {
        "server",
        "reward",
        "policy",
        "features",
        "rules",
        "proxy",
        "judge",
        "admin",
        "dashboard",
        "auth",
        "models",
        "cluster",
    }
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
        rules=_rules(raw.get("rules", {}), source),
        admin=_section(AdminConfig, raw.get("admin", {}), "admin", source),
        dashboard=_section(DashboardConfig, raw.get("dashboard", {}), "dashboard", source),
        auth=_auth(raw.get("auth", {}), source),
        proxy=_proxy(raw.get("proxy", {}), source),
        judge=_section(JudgeConfig, raw.get("judge", {}), "judge", source),
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


def _rules(raw: Any, source: str) -> RulesConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [rules] must be a table")
    scalars = {k: v for k, v in raw.items() if k not in _RULE_TABLES}
    tables: dict[str, Any] = {}
    for name in _RULE_TABLES:
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [rules.{name}] must be a table")
        tables[name] = {key: _rule_entry(name, key, value, source) for key, value in table.items()}
    return replace(_section(RulesConfig, scalars, "rules", source), **tables)


def _rule_entry(table: str, key: str, value: Any, source: str) -> Any:
    where = f"{source}: rules.{table}.{key}"
    if table == "budgets":
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite_nonneg(value):
            raise ConfigError(f"{where} must be a number of USD >= 0")
        return float(value)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a non-empty list of model names")
    return tuple(value)


def _auth(raw: Any, source: str) -> AuthConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [auth] must be a table")
    raw = dict(raw)
    try:
        keys = parse_keys(raw.pop("keys", []), source)
    except AuthConfigError as exc:
        raise ConfigError(str(exc)) from None
    return replace(_section(AuthConfig, raw, "auth", source), keys=keys)


def _proxy(raw: Any, source: str) -> ProxyConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [proxy] must be a table")
    raw = dict(raw)
    profiles = raw.pop("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"{source}: [proxy.profiles] must hold one table per profile")
    for name, meta in profiles.items():
        for key, value in meta.items():
            ok = isinstance(value, str | bool | int | float) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise ConfigError(
                    f"{source}: proxy.profiles.{name}.{key} must be a string, number, boolean or list of strings"
                )
    return replace(_section(ProxyConfig, raw, "proxy", source), profiles=profiles)


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
    s, r, p, x, j, d = cfg.server, cfg.reward, cfg.policy, cfg.proxy, cfg.judge, cfg.dashboard
    checks = [
        (0 <= s.port <= 65535, "server.port must be in 0..65535"),
        (s.max_body_bytes > 0, "server.max_body_bytes must be > 0"),
        (s.max_query_chars > 0, "server.max_query_chars must be > 0"),
        (s.checkpoint_interval_s > 0, "server.checkpoint_interval_s must be > 0"),
        (s.expire_interval_s > 0, "server.expire_interval_s must be > 0"),
        (s.write_batch_max > 0, "server.write_batch_max must be > 0"),
        (s.max_pending > 0, "server.max_pending must be > 0"),
        (s.max_write_queue > 0, "server.max_write_queue must be > 0"),
        (s.max_headers > 0, "server.max_headers must be > 0"),
        (_finite_pos(s.read_timeout_s), "server.read_timeout_s must be > 0"),
        (_finite_nonneg(s.write_linger_ms) and s.write_linger_ms <= 1000, "server.write_linger_ms must be in 0..1000"),
        (s.decision_ack in ("commit", "enqueue"), 'server.decision_ack must be "commit" or "enqueue"'),
        (r.max_parts_per_event > 0, "reward.max_parts_per_event must be > 0"),
        (cfg.auth.mode in AUTH_MODES, f"auth.mode must be one of {AUTH_MODES}"),
        (
            _finite_nonneg(cfg.auth.route_rate_per_s) and _finite_nonneg(cfg.auth.reward_rate_per_s),
            "auth.route_rate_per_s and auth.reward_rate_per_s must be finite numbers >= 0",
        ),
        (_finite_pos(cfg.auth.rate_burst_s), "auth.rate_burst_s must be > 0"),
        (cfg.auth.rate_max_clients > 0, "auth.rate_max_clients must be > 0"),
        (_finite_nonneg(r.cost_weight), "reward.cost_weight must be a finite number >= 0"),
        (_finite_nonneg(r.latency_weight), "reward.latency_weight must be a finite number >= 0"),
        (_finite_pos(r.cost_scale), "reward.cost_scale must be > 0"),
        (_finite_pos(r.latency_scale), "reward.latency_scale must be > 0"),
        (_finite_nonneg(r.reward_wait_s), "reward.reward_wait_s must be >= 0"),
        (
            r.default_quality is None or 0.0 <= r.default_quality <= 1.0,
            'reward.default_quality must be in 0..1 or "skip"',
        ),
        (r.quality_rule in QUALITY_RULES, f"reward.quality_rule must be one of {QUALITY_RULES}"),
        (r.default_output_tokens >= 0, "reward.default_output_tokens must be >= 0"),
        (p.exploration in EXPLORATIONS, f"policy.exploration must be one of {EXPLORATIONS}"),
        (0.0 <= p.epsilon <= 1.0, "policy.epsilon must be in 0..1"),
        (_finite_pos(p.gamma_scale), "policy.gamma_scale must be > 0"),
        (p.bag_size >= 1 and p.cover_size >= 1, "policy.bag_size and policy.cover_size must be >= 1"),
        (1 <= p.bits <= 30, "policy.bits must be in 1..30"),
        (0.0 <= p.min_learn_probability <= 1.0, "policy.min_learn_probability must be in 0..1"),
        # -- the decomposed learner --
        (_finite_nonneg(p.exploration_budget), "policy.exploration_budget must be a finite number >= 0"),
        (1 <= p.thompson_draws <= 4096, "policy.thompson_draws must be in 1..4096"),
        (p.residual in ("ridge", "vw"), 'policy.residual must be "ridge" or "vw"'),
        (8 <= p.residual_dims <= 4096, "policy.residual_dims must be in 8..4096"),
        (_finite_pos(p.residual_strength), "policy.residual_strength must be > 0"),
        (
            not p.baseline_model or not cfg.models or p.baseline_model in {m.name for m in cfg.models},
            "policy.baseline_model must be a catalog model or empty",
        ),
        (
            set(p.crossed_namespaces) <= set(SHARED_NAMESPACES),
            f"policy.crossed_namespaces must be among {SHARED_NAMESPACES}",
        ),
        (_finite_pos(p.learning_rate), "policy.learning_rate must be > 0"),
        (cfg.features.max_words > 0, "features.max_words must be > 0"),
        (cfg.features.tail_words >= 0, "features.tail_words must be >= 0"),
        (
            cfg.features.simhash_tables >= 0
            and cfg.features.simhash_bits > 0
            and cfg.features.simhash_tables * cfg.features.simhash_bits <= SIMHASH_MAX_BITS,
            f"features.simhash_tables * simhash_bits must be at most {SIMHASH_MAX_BITS}, simhash_bits > 0",
        ),
        (
            cfg.admin.key_sha256 == "" or re.fullmatch(r"[0-9a-f]{64}", cfg.admin.key_sha256) is not None,
            "admin.key_sha256 must be 64 lowercase hex digits (sha256 of the key) or empty",
        ),
        (_finite_pos(d.interval_s), "dashboard.interval_s must be > 0"),
        (d.history >= 1, "dashboard.history must be >= 1"),
        (d.recent_decisions >= 1, "dashboard.recent_decisions must be >= 1"),
        (_finite_pos(d.poll_interval_s), "dashboard.poll_interval_s must be > 0"),
        *_rule_checks(cfg.rules),
        (_finite_pos(x.total_deadline_s), "proxy.total_deadline_s must be > 0"),
        (_finite_pos(x.connect_timeout_s), "proxy.connect_timeout_s must be > 0"),
        (_finite_pos(x.attempt_timeout_s), "proxy.attempt_timeout_s must be > 0"),
        (_finite_pos(x.read_timeout_s), "proxy.read_timeout_s must be > 0"),
        (x.max_connections > 0, "proxy.max_connections must be > 0"),
        (x.max_response_bytes > 0, "proxy.max_response_bytes must be > 0"),
        (0.0 <= j.sample_rate <= 1.0, "judge.sample_rate must be in 0..1"),
        (j.score_max > j.score_min, "judge.score_max must be > judge.score_min"),
        (j.concurrency >= 1, "judge.concurrency must be >= 1"),
        (_finite_pos(j.rate_limit_per_s), "judge.rate_limit_per_s must be > 0"),
        (j.max_retries >= 0, "judge.max_retries must be >= 0"),
        (_finite_nonneg(j.backoff_s), "judge.backoff_s must be >= 0"),
        (_finite_nonneg(j.max_spend_usd), "judge.max_spend_usd must be >= 0"),
        (_finite_nonneg(j.input_price) and _finite_nonneg(j.output_price), "judge prices must be >= 0"),
        (j.max_output_tokens >= 1, "judge.max_output_tokens must be >= 1"),
        (_finite_pos(j.timeout_s), "judge.timeout_s must be > 0"),
        (_finite_nonneg(j.delay_s), "judge.delay_s must be >= 0"),
        (_finite_pos(j.retention_s), "judge.retention_s must be > 0"),
        (j.max_samples >= 1, "judge.max_samples must be >= 1"),
        (j.max_sample_chars >= 1, "judge.max_sample_chars must be >= 1"),
        (_finite_pos(j.poll_interval_s), "judge.poll_interval_s must be > 0"),
        (cfg.cluster.workers >= 1, "cluster.workers must be >= 1"),
        (_finite_pos(cfg.cluster.learner_poll_s), "cluster.learner_poll_s must be > 0"),
        (_finite_pos(cfg.cluster.publish_interval_s), "cluster.publish_interval_s must be > 0"),
        (_finite_pos(cfg.cluster.reload_interval_s), "cluster.reload_interval_s must be > 0"),
    ]
    reserved = sorted(set(x.profiles) & ({"auto"} | {m.name for m in cfg.models}))
    if reserved:
        raise ConfigError(f'{source}: proxy.profiles {reserved} clash with "auto" or a model name')
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")
    names = [m.name for m in cfg.models]
    if not names:
        raise ConfigError(f"{source}: the catalog needs at least one [[models]] entry")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: duplicate model name(s) {duplicates}")
    _check_rule_models(cfg.rules, set(names), source)


def _rule_checks(r: RulesConfig) -> list[tuple[bool, str]]:
    return [
        (r.on_empty in ON_EMPTY, f"rules.on_empty must be one of {ON_EMPTY}"),
        (
            r.on_empty != "default" or bool(r.default_model),
            'rules.default_model must name a model when rules.on_empty = "default"',
        ),
        (_finite_pos(r.budget_period_s), "rules.budget_period_s must be > 0"),
        (_finite_nonneg(r.budget_price_ceiling), "rules.budget_price_ceiling must be >= 0"),
        (r.latency_window >= 1, "rules.latency_window must be >= 1"),
        (
            1 <= r.latency_min_samples <= r.latency_window,
            "rules.latency_min_samples must be in 1..rules.latency_window",
        ),
        (r.cooldown_failures >= 1, "rules.cooldown_failures must be >= 1"),
        (_finite_nonneg(r.cooldown_window_s), "rules.cooldown_window_s must be >= 0"),
        (_finite_nonneg(r.cooldown_s), "rules.cooldown_s must be >= 0"),
        (0.0 <= r.cold_start_share <= 1.0, "rules.cold_start_share must be in 0..1"),
        (r.cold_start_rewards >= 0, "rules.cold_start_rewards must be >= 0"),
        (_finite_nonneg(r.sticky_ttl_s), "rules.sticky_ttl_s must be >= 0"),
        (r.sticky_max_conversations >= 1, "rules.sticky_max_conversations must be >= 1"),
    ]


def _check_rule_models(r: RulesConfig, names: set[str], source: str) -> None:
    """Rules may only name models of the catalog: a typo must fail at load, not silently allow nothing."""
    named = [
        (f"rules.{table}.{key}", models) for table in ("tiers", "tenants") for key, models in getattr(r, table).items()
    ]
    if r.default_model:
        named.append(("rules.default_model", (r.default_model,)))
    for where, models in named:
        unknown = sorted(set(models) - names)
        if unknown:
            raise ConfigError(
                f"{source}: {where} names model(s) not in the catalog: {unknown}; the catalog has {sorted(names)}"
            )


def _finite_nonneg(v: float) -> bool:
    return math.isfinite(v) and v >= 0


def _finite_pos(v: float) -> bool:
    return math.isfinite(v) and v > 0
