"""Every configuration key, once: one frozen dataclass per TOML section (the style: config/keys.py).

To add a key, add one field to its section, e.g. in `PolicyConfig`:

    warmup_steps: int = key(0, "updates before the policy serves", at_least(0))

then run `make docs` so docs/configuration.md shows it. Loading, checking and the reference all
read the fields; nothing else lists the keys.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Literal

from banditroute.config import records
from banditroute.config.keys import (
    FINITE_NON_NEGATIVE,
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    Check,
    ConfigError,
    Rule,
    above,
    at_least,
    check_section,
    key,
    within,
)
from banditroute.types import ApiKey, ModelSpec, RewardWeights

Exploration = Literal["thompson", "squarecb", "epsilon", "softmax", "bag", "cover", "regcb", "regcbopt", "greedy"]
Namespace = Literal["w", "x", "u", "c"]  # the request's VW namespaces (features.py)
SIMHASH_MAX_BITS = 32  # features.simhash_tables * simhash_bits: the bits of one 32-bit word hash
DEFAULT_RUBRIC = (
    "You are grading an AI assistant's answer to a user. Judge helpfulness, correctness and whether it "
    "follows the user's instructions; ignore style unless it hurts clarity. Reply with a JSON object "
    'and nothing else: {"score": N, "reason": "one sentence"}, where N is an integer from 1 (useless '
    "or wrong) to 10 (excellent)."
)
SHA256_OR_EMPTY = Check(
    lambda v: v == "" or re.fullmatch(r"[0-9a-f]{64}", v) is not None,
    "64 lowercase hex digits (sha256 of the key) or empty",
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP service and its log."""

    host: str = key("127.0.0.1", "address to bind (`--host`, env `BANDITROUTE_HOST`)")
    port: int = key(8080, "port (`--port`, env `BANDITROUTE_PORT`)", within(0, 65535))
    data_dir: str = key(
        "var",
        "directory of the SQLite log `banditroute.db` and the reward-token secret"
        " (`--data-dir`, env `BANDITROUTE_DATA_DIR`)",
    )
    max_body_bytes: int = key(8_000_000, "larger request bodies → 413", above(0))
    max_query_chars: int = key(
        4_000_000, "longer queries → 413 (about 1M tokens: the largest context windows)", above(0)
    )
    checkpoint_interval_s: float = key(30.0, "how often the policy is snapshotted", above(0))
    expire_interval_s: float = key(1.0, "how often expired joins are finished", above(0))
    write_batch_max: int = key(1024, "records per commit at most", above(0))
    max_pending: int = key(
        1_000_000, "pending joins at most; beyond, the oldest is finished early with defaults", above(0)
    )
    max_write_queue: int = key(
        100_000,
        "records waiting for the writer at most; beyond, `/route` and `/reward` → 503 `overloaded` with `Retry-After`",
        above(0),
    )
    max_headers: int = key(64, "request headers at most; more → 400 before any handler runs", above(0))
    read_timeout_s: float = key(30.0, "a request body must arrive within this, else 408", POSITIVE)
    decision_ack: Literal["commit", "enqueue"] = key(
        "commit",
        '`/route` answers after its decision is committed. `"enqueue"` is retired (a deprecated alias of'
        ' `"commit"`, with a warning at start): `durability = "process"` makes the commit cheap without losing'
        " answered decisions to a crash",
    )
    write_linger_ms: float = key(
        2.0,
        "a write batch that starts with a record nobody waits for (a learned row) gathers records this long;"
        ' under `durability = "power"` such batches commit without an fsync (durable with the next awaited commit)',
        within(0, 1000),
    )
    durability: Literal["process", "power"] = key(
        "process",
        '`"process"`: an acknowledged record survives the process dying (kill -9, OOM, a deploy); commits do not'
        " fsync, a thread fsyncs the log every `fsync_interval_ms`, and a power cut or kernel crash loses at most"
        ' about that much; `"power"`: `/route` and `/reward` answer after their commit\'s fsync (group commit),'
        " so a power cut loses nothing acknowledged",
    )
    fsync_interval_ms: float = key(
        200.0,
        'with `durability = "process"`: the log is fsynced at most this often (when something was committed)',
        within(1, 60_000),
    )


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where the log lives and how long it keeps what."""

    url: str = key(
        "",
        '`""`: the SQLite file `banditroute.db` in `server.data_dir`; `"postgresql://user@host/db"`: one'
        " PostgreSQL database that any number of hosts share (`serve --store URL`, docs/deployment.md)",
        Check(
            lambda v: v == "" or v.startswith(("postgresql://", "postgres://")),
            'empty or a "postgresql://" URL',
        ),
    )
    retention_days: float = key(
        0.0,
        "events (decision, feedback parts, learned row) older than this many days are removed once every kept"
        " checkpoint covers them (never pending ones, never inside the current budget period); 0: keep everything",
        FINITE_NON_NEGATIVE,
    )
    prune_interval_s: float = key(
        3600.0, "how often the service (the learner with `--workers`) applies `retention_days`", POSITIVE
    )

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            lambda s: s.url == "" or s.retention_days == 0,
            "store.retention_days works on the SQLite log only (not yet with a PostgreSQL store.url)",
        ),
    )


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """reward = quality − cost_weight · cost/cost_scale − latency_weight · latency/latency_scale."""

    cost_weight: float = key(0.1, "quality points given up per `cost_scale` USD", FINITE_NON_NEGATIVE)
    latency_weight: float = key(0.0, "quality points given up per `latency_scale` ms", FINITE_NON_NEGATIVE)
    cost_scale: float = key(0.001, "USD: the cost term counts USD per 1,000 requests", POSITIVE)
    latency_scale: float = key(10_000.0, "ms", POSITIVE)
    reward_wait_s: float = key(600.0, "how long a decision waits for its feedback", NON_NEGATIVE)
    default_quality: float | None = key(
        None,
        'quality assumed when none arrives in time; unset (or `"skip"`): an event without a quality teaches the'
        " quality learner nothing (its cost, latency and tokens still refine their estimates)",
        Check(lambda v: v is None or 0.0 <= v <= 1.0, 'in 0..1 or "skip"'),
        parse=records.quality_or_skip,
    )
    quality_rule: Literal["first", "last"] = key("first", "which quality counts when several arrive")
    default_output_tokens: int = key(
        256, "output tokens assumed for cost and latency estimates when neither cost nor tokens arrive", at_least(0)
    )
    max_parts_per_event: int = key(32, "feedback parts one event accepts; more → 409", above(0))
    target_cost_per_1k: float | None = key(
        None,
        "a budget, USD per 1,000 requests: `cost_weight` is then set online so spend tracks it (from"
        " `cost_weight` on; docs/budget.md); unset: `cost_weight` is fixed",
        Check(lambda v: v is None or (math.isfinite(v) and v > 0), "> 0 or unset"),
        parse=records.number,
    )
    target_quality: float | None = key(
        None,
        "a quality target, mean quality (0..1) over learned events: `cost_weight` is then set online so"
        " quality tracks it at the least spend (docs/budget.md); at most one of the two targets",
        Check(lambda v: v is None or 0.0 < v < 1.0, "in (0, 1) or unset"),
        parse=records.number,
    )

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            lambda r: r.target_cost_per_1k is None or r.target_quality is None,
            "reward.target_cost_per_1k and reward.target_quality: set at most one",
        ),
    )

    @property
    def weights(self) -> RewardWeights:
        return RewardWeights(self.cost_weight, self.latency_weight, self.cost_scale, self.latency_scale)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The learner: the decomposed quality learner (`thompson`, the default) or VW learning the whole reward."""

    exploration: Exploration = key(
        "thompson",
        "`thompson`: quality learned per (request, model), cost and latency known, Thompson sampling over the"
        " combined score within the exploration budget; the others: VW's own exploration over the whole reward",
    )
    gamma_scale: float = key(
        100.0, "SquareCB / RegCB exploration: greediness γ = gamma_scale · t^gamma_exponent", POSITIVE
    )
    gamma_exponent: float = key(0.5, "see `gamma_scale`")
    epsilon: float = key(0.05, "exploration share of epsilon-greedy and bag", UNIT)
    softmax_lambda: float = key(10.0, "softmax inverse temperature")
    bag_size: int = key(5, "policies of bag", at_least(1))
    cover_size: int = key(3, "policies of cover", at_least(1))
    bits: int = key(20, "VW hash bits", within(1, 30))
    learning_rate: float = key(0.5, "VW step size", POSITIVE)
    power_t: float = key(0.5, "decay of the VW step size")
    attributes: bool = key(
        True,
        "the catalog attributes as categories of the action (namespace `m`), a linear prior shared by models"
        " of a price or context class; `false`: the model id only",
    )
    cross_attributes: bool = key(
        False,
        "cross the catalog attributes (price and context class, capabilities) with the request features too,"
        " not only the model id; by default they act linearly (a prior for a new model)",
    )
    min_learn_probability: float = key(
        0.0,
        "VW updates weigh 1 / max(logged probability, this): clipped importance weights; 0 leaves them unclipped",
        UNIT,
    )
    crossed_namespaces: tuple[Namespace, ...] = key(
        ("w", "x", "u", "c"),
        "request namespaces (words, structure, metadata, character grams) crossed with the model id, i.e."
        " learned per model; the others act as one term shared by all models",
    )
    extra_args: tuple[str, ...] = key((), "more VW arguments, appended")
    baseline_model: str = key(
        "", "the team's default model the exploration budget is kept against; empty: the best model on the evals"
    )
    exploration_budget: float = key(
        0.05, "share of the baseline's estimated cumulative reward that exploration may cost", FINITE_NON_NEGATIVE
    )
    thompson_draws: int = key(
        64, "joint posterior draws the pmf is the share of (its resolution: 1 / draws)", within(1, 4096)
    )
    residual: Literal["ridge", "vw"] = key(
        "ridge", "the contextual part of the quality estimate: `ridge` (numpy, per model) or `vw` (VW regression)"
    )
    residual_dims: int = key(128, "ridge: hashed feature buckets (memory: dims² floats per model)", within(8, 4096))
    residual_strength: float = key(10.0, "ridge: the L2 strength, on unit-length rows", POSITIVE)
    seed: int | None = key(
        None,
        "seeds the draw each decision samples its model with (a `random.Random(seed)` per process), so a replay"
        " of the same requests in the same order makes the same decisions (demos, tests); unset: each decision's"
        " draw comes from its random event id",
        parse=records.optional_int,
    )


@dataclass(frozen=True, slots=True)
class FeaturesConfig:
    """What of a request becomes features (features.py)."""

    max_words: int = key(64, "words read from the query; longer queries are cut for featurizing only", above(0))
    tail_words: int = key(
        64, "also the last words of a query longer than `max_words` (where its question often is)", at_least(0)
    )
    bigrams: bool = key(False, "word bigrams")
    shape_numbers: bool = key(False, "words with digits become their shape (`#num<k>`, `#hex`, `#id`)")
    char_ngrams: int = key(
        0,
        "n of the character n-grams (digits folded to 0) of the first `char_window` characters, namespace `c`; 0: none",
    )
    char_window: int = key(128, "characters read for the character n-grams")
    simhash_tables: int = key(
        0,
        "SimHash codes of the distinct words in namespace `x` (coarse, task-like: prompts sharing most words"
        " share buckets); 0: none",
        at_least(0),
    )
    simhash_bits: int = key(4, "bits per SimHash code (2^bits buckets each)", above(0))
    metadata_keys: tuple[str, ...] = key(
        ("user_tier", "channel", "task", "tenant", "language", "turns", "system_prompt", "tools", "response_format"),
        "metadata that becomes features (the last four are set by the proxy)",
    )
    log_sensitive_words: bool = key(
        False,
        "requests flagged sensitive (the data policy: `metadata.sensitive` or detected personal data) keep their"
        " hashed word features, live and in the log; `false`: they are featurized without words, grams or SimHash",
    )

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            lambda f: f.simhash_tables * f.simhash_bits <= SIMHASH_MAX_BITS,
            f"features.simhash_tables * simhash_bits must be at most {SIMHASH_MAX_BITS}",
        ),
    )


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """The hard rules before the bandit, and the model lifecycle."""

    pii_detection: bool = key(True, "built-in detection of obvious personal data in the query, for the data policy")
    on_empty: Literal["reject", "default"] = key(
        "reject", 'when the rules leave no model: `"reject"` (422) or `"default"` (use `default_model`)'
    )
    default_model: str = key("", 'the model used with `on_empty = "default"`')
    tiers: dict[str, tuple[str, ...]] = key(
        {}, "`[rules.tiers]`: user tier → allowed models", parse=records.model_lists
    )
    tenants: dict[str, tuple[str, ...]] = key(
        {}, "`[rules.tenants]`: tenant → allowed models", parse=records.model_lists
    )
    budgets: dict[str, float] = key({}, "`[rules.budgets]`: tenant → USD per budget period", parse=records.budgets)
    budget_period_s: float = key(86_400.0, "length of a budget period (fixed windows from the epoch)", POSITIVE)
    budget_price_ceiling: float = key(
        1.0, "USD per 1M output tokens: the models allowed once a budget is spent", NON_NEGATIVE
    )
    latency_window: int = key(200, "latest observed latencies kept per model for its p95", at_least(1))
    latency_min_samples: int = key(20, "latencies needed before the p95 replaces the catalog's latency prior")
    cooldown_failures: int = key(3, "failures within `cooldown_window_s` that start a cooldown", at_least(1))
    cooldown_window_s: float = key(60.0, "seconds", NON_NEGATIVE)
    cooldown_s: float = key(60.0, "how long a cooldown lasts", NON_NEGATIVE)
    cold_start_share: float = key(
        0.05,
        "with a VW exploration (not thompson): minimum probability of a model with too few rewards (0 turns it off)",
        UNIT,
    )
    cold_start_rewards: int = key(20, "rewards after which a model's cold start ends", at_least(0))
    sticky_conversations: bool = key(True, "keep a conversation's model")
    sticky_ttl_s: float = key(3600.0, "a conversation is forgotten after this much silence", NON_NEGATIVE)
    sticky_max_conversations: int = key(100_000, "conversations remembered at most", at_least(1))
    escalation: bool = key(True, "accept `escalate_from` on `/route`")

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            lambda r: r.on_empty != "default" or bool(r.default_model),
            'rules.default_model must name a model when rules.on_empty = "default"',
        ),
        Rule(
            lambda r: 1 <= r.latency_min_samples <= r.latency_window,
            "rules.latency_min_samples must be in 1..rules.latency_window",
        ),
    )


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The operator endpoints (`/admin/...`)."""

    key_sha256: str = key(
        "",
        "hex SHA-256 of the admin key (only the hash lives in the file); empty: the key in env"
        " `BANDITROUTE_ADMIN_KEY`; neither: the admin endpoints are disabled",
        SHA256_OR_EMPTY,
    )


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """The live dashboard (`/dashboard`)."""

    interval_s: float = key(5.0, "width of one time-series bucket", POSITIVE)
    history: int = key(360, "buckets kept in memory (360 × 5 s = 30 minutes)", at_least(1))
    recent_decisions: int = key(50, "latest decisions listed with their reasons", at_least(1))
    poll_interval_s: float = key(2.0, "how often the page polls `/dashboard/data`", POSITIVE)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """API keys and rate limits (the gate: auth.py)."""

    mode: Literal["auto", "on", "off"] = key(
        "auto", '`"auto"`: keys required unless the server binds a loopback address and no key is set; `"on"`, `"off"`'
    )
    keys: tuple[ApiKey, ...] = key(
        (),
        '`[{key_sha256 = "…", scopes = ["route", "reward", "admin"]}]`; more from env `BANDITROUTE_API_KEYS`',
        parse=records.api_keys,
    )
    route_rate_per_s: float = key(
        1000.0, "`/route` (and `/v1/…`) requests per second per key; 0: no limit", FINITE_NON_NEGATIVE
    )
    reward_rate_per_s: float = key(2000.0, "`/reward` requests per second per key; 0: no limit", FINITE_NON_NEGATIVE)
    rate_burst_s: float = key(2.0, "a key's bucket holds this many seconds of its rate", POSITIVE)
    rate_max_clients: int = key(10_000, "rate-limit buckets kept (least recently used dropped)", above(0))


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The OpenAI-compatible proxy (`/v1/chat/completions`); models need `base_url` to be proxied."""

    total_deadline_s: float = key(120.0, "from request to a committed answer, fallbacks included", POSITIVE)
    attempt_timeout_s: float = key(
        60.0, "an attempt without an answer (streamed: without a first chunk) by then is abandoned", POSITIVE
    )
    connect_timeout_s: float = key(5.0, "TCP connect to an upstream", POSITIVE)
    read_timeout_s: float = key(60.0, "longest silence between two chunks of an upstream answer", POSITIVE)
    max_connections: int = key(100, "pooled connections to all upstreams together", above(0))
    max_response_bytes: int = key(
        32_000_000, "a larger non-streamed upstream answer counts as a server error", above(0)
    )
    profiles: dict[str, dict[str, Any]] = key(
        {},
        '`[proxy.profiles.NAME]` tables: metadata merged into the routing metadata of requests with `model = "NAME"`',
        parse=records.profiles,
    )


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """The LLM-as-judge worker (`banditroute judge`) and the proxy's sampling for it."""

    endpoint: str = key("", 'the judge\'s OpenAI-compatible API root, e.g. `http://host:port/v1`; `""`: no judge')
    model: str = key("", "the judge model's name at that endpoint")
    api_key_env: str = key("", 'environment variable holding the judge\'s key; `""`: none sent')
    sample_rate: float = key(0.0, "fraction of completed proxy events whose text is kept for the judge", UNIT)
    rubric: str = key(DEFAULT_RUBRIC, "the judge's system prompt; must ask for a score on the scale below")
    score_min: float = key(1.0, "the rubric's scale, mapped linearly onto quality 0..1")
    score_max: float = key(10.0, "see `score_min`")
    concurrency: int = key(4, "judge calls at once", at_least(1))
    rate_limit_per_s: float = key(5.0, "judge calls started per second at most", POSITIVE)
    max_retries: int = key(3, "retries per sample (failed calls, malformed answers, posting the reward)", at_least(0))
    backoff_s: float = key(1.0, "first retry delay; doubles each retry", NON_NEGATIVE)
    max_spend_usd: float = key(5.0, "the worker stops judging once its recorded spend reaches this", NON_NEGATIVE)
    input_price: float = key(0.0, "the judge model's USD per 1M input tokens, for the spend", NON_NEGATIVE)
    output_price: float = key(0.0, "the judge model's USD per 1M output tokens", NON_NEGATIVE)
    max_output_tokens: int = key(200, "the judge's answer length", at_least(1))
    timeout_s: float = key(60.0, "one judge call", POSITIVE)
    delay_s: float = key(
        0.0, "a sample is judged only this long after its event, so users can answer first", NON_NEGATIVE
    )
    retention_s: float = key(7 * 86_400.0, "samples older than this (7 days) are deleted", POSITIVE)
    max_samples: int = key(10_000, "samples kept at most; the oldest go first", at_least(1))
    max_sample_chars: int = key(32_000, "the kept prompt and answer are each cut to this", at_least(1))
    poll_interval_s: float = key(1.0, "how often the worker looks for due samples when idle", POSITIVE)
    service_url: str = key("", 'where the worker posts `/reward`; `""`: `http://server.host:server.port`')

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(lambda j: j.score_max > j.score_min, "judge.score_max must be > judge.score_min"),
    )


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The multi-process mode (`serve --workers N`): serving processes plus one learner over the log."""

    workers: int = key(1, "serving processes (`serve --workers N`); 1: one process serves and learns", at_least(1))
    learner_poll_s: float = key(0.05, "how often the learner reads new decisions and feedback from the log", POSITIVE)
    publish_interval_s: float = key(1.0, "the learner publishes a policy snapshot at most this often", POSITIVE)
    reload_interval_s: float = key(0.5, "how often a serving process looks for a newer snapshot", POSITIVE)
    failover_s: float = key(
        5.0,
        "with a PostgreSQL store: another host is the learner within this long after the learner dies"
        " (the database frees a dead host's lock within it; hosts try for the lock four times as often)",
        within(1, 300),
    )
    learner: bool = key(True, "with a PostgreSQL store: this host may be elected the learner (`--no-learner`: never)")
    host_name: str = key("", "`/stats` `host` and the database session's name; `\"\"`: the machine's name and the port")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole file: one field per section, in the reference's order, and the catalog."""

    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    models: tuple[ModelSpec, ...] = field(default=(), metadata={"parse": records.models})
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def with_overrides(self, **sections: dict[str, Any]) -> Config:
        """A copy with some keys of some sections replaced, validated like a file."""
        updated = {name: replace(getattr(self, name), **values) for name, values in sections.items()}
        cfg = replace(self, **updated)
        validate(cfg)
        return cfg


def validate(cfg: Config, source: str = "config") -> None:
    """Every key's checks, each section's rules, then what ties the sections to the catalog."""
    for f in fields(cfg):
        if f.name != "models":
            check_section(getattr(cfg, f.name), f.name, source)
    names = [m.name for m in cfg.models]
    reserved = sorted(set(cfg.proxy.profiles) & ({"auto"} | set(names)))
    if reserved:
        raise ConfigError(f'{source}: proxy.profiles {reserved} clash with "auto" or a model name')
    if not names:
        raise ConfigError(f"{source}: the catalog needs at least one [[models]] entry")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: duplicate model name(s) {duplicates}")
    _check_rule_models(cfg.rules, set(names), source)
    if cfg.policy.baseline_model and cfg.policy.baseline_model not in names:
        raise ConfigError(f"{source}: policy.baseline_model must be a catalog model or empty")
    targeted = cfg.reward.target_cost_per_1k is not None or cfg.reward.target_quality is not None
    if targeted and cfg.policy.exploration != "thompson":
        # Only the decomposed learner applies the weight at decision time; VW's reward learner would
        # learn a reward whose weight the controller keeps moving.
        raise ConfigError(f'{source}: reward targets need policy.exploration = "thompson"')


def _check_rule_models(r: RulesConfig, names: set[str], source: str) -> None:
    """Rules may only name models of the catalog: a typo must fail at load, not silently allow nothing."""
    named = [
        (f"rules.{table}.{k}", models) for table in ("tiers", "tenants") for k, models in getattr(r, table).items()
    ]
    if r.default_model:
        named.append(("rules.default_model", (r.default_model,)))
    for where, models in named:
        unknown = sorted(set(models) - names)
        if unknown:
            raise ConfigError(
                f"{source}: {where} names model(s) not in the catalog: {unknown}; the catalog has {sorted(names)}"
            )
