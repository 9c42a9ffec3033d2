"""The vocabulary every other module speaks: models, decisions, feedback, reward weights.

Plain data only. The service, the simulators and the estimators share these definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One routable model as the catalog describes it (a `[[models]]` table; `doc`: the reference)."""

    name: str = field(
        metadata={
            "doc": "the model's name in decisions, rules and the proxy's `model` (unique, at most 200 characters)"
        }
    )
    input_price: float = field(metadata={"doc": "USD per 1M input tokens (>= 0)"})
    output_price: float = field(metadata={"doc": "USD per 1M output tokens (>= 0)"})
    context_window: int = field(metadata={"doc": "tokens, input + output (> 0)"})
    capabilities: frozenset[str] = field(
        default=frozenset(), metadata={"doc": 'what requests may need, e.g. `"tools"`, `"json_mode"`, `"code"`'}
    )
    allow_sensitive_data: bool = field(default=False, metadata={"doc": "may see queries with obvious personal data"})
    latency_ttft_ms: float = field(default=500.0, metadata={"doc": "prior: time to first token"})
    tokens_per_s: float = field(default=80.0, metadata={"doc": "prior: output speed"})
    base_url: str | None = field(default=None, metadata={"doc": "OpenAI-compatible API root, for the proxy"})
    api_key_env: str | None = field(default=None, metadata={"doc": "environment variable holding its API key"})
    upstream_model: str | None = field(default=None, metadata={"doc": "its name upstream, if not `name`"})

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6


@dataclass(frozen=True, slots=True)
class RewardWeights:
    """reward = quality - cost_weight * cost/cost_scale - latency_weight * latency/latency_scale.

    No defaults here: the config's `[reward]` keys are the defaults (`RewardConfig().weights`).
    """

    cost_weight: float
    latency_weight: float
    cost_scale: float  # USD: the cost term counts USD per 1,000 requests
    latency_scale: float  # ms


SCOPES = ("route", "reward", "admin")  # what an API key may call (auth.required_scope)


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_sha256: bytes  # the 32-byte digest; the key itself is never kept
    scopes: frozenset[str]

    @property
    def key_id(self) -> str:
        """A short, non-secret name for logs and rate limits: the digest's first 8 hex digits."""
        return self.key_sha256.hex()[:8]


@dataclass(slots=True)
class Decision:
    """What the router chose for one request, with everything learning and OPE need later.

    `features` is the compact shared-context feature string (not a parsed VW example), `models`
    the allowed set in the order the policy scored it, `pmf` aligned with `models`. While it
    waits for feedback the joiner holds it packed (router.pack_pending).
    """

    event_id: str
    ts: float
    features: str
    models: tuple[str, ...]
    chosen: int
    pmf: tuple[float, ...]
    explored: bool
    reason: str
    input_tokens: int = 0
    tenant: str | None = None
    # For the caller only (the reason keeps them in the log): what the rules excluded, and the
    # next best allowed models to try on error, best first.
    excluded: dict[str, str] = field(default_factory=dict)
    fallbacks: tuple[str, ...] = ()
    # Shadow mode: the bandit's own pmf over `models` and its sampled pick, logged next to the
    # baseline that was served (then `pmf` is the baseline's degenerate pmf). None otherwise.
    shadow_pmf: tuple[float, ...] | None = None
    shadow_chosen: int | None = None

    @property
    def model(self) -> str:
        return self.models[self.chosen]

    @property
    def probability(self) -> float:
        return self.pmf[self.chosen]


@dataclass(slots=True)
class FeedbackPart:
    """One piece of feedback for an event; several may arrive, late and in any order."""

    event_id: str
    ts: float
    quality: float | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    source: str = "user"
    error: str | None = None
    ttft_ms: float | None = None  # time to first token, as the proxy measured it (kept, not learned)


@dataclass(slots=True)
class Outcome:
    """The joined feedback of one event, as the reward formula consumes it."""

    quality: float | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    quality_source: str | None = None
    sources: list[str] = field(default_factory=list)
    parts: int = 0  # how many feedback parts were merged in


@dataclass(frozen=True, slots=True)
class LearnedRow:
    """One finished join as the log keeps it; `vw_cost` None when nothing was learned."""

    seq: int
    event_id: str
    ts: float
    reward: float | None
    quality: float | None
    cost_usd: float | None
    latency_ms: float | None
    vw_cost: float | None
    defaulted: str
    cost_weight: float
    latency_weight: float


@dataclass(frozen=True, slots=True)
class EvalExample:
    """One prompt of an eval sample with every model's outcome on it ("evals before routing").

    `outcomes` maps a model name to what that model's answer got (quality, cost, latency, tokens):
    full information, so learning from it needs no propensity.
    """

    query: str
    metadata: Mapping[str, object]
    outcomes: Mapping[str, Outcome]


@dataclass(frozen=True, slots=True)
class WarmStart:
    """What a warm start learned: how many examples and updates, and the best model on the evals."""

    examples: int
    updates: int
    baseline: str | None  # the model with the highest mean reward on the evals at the weights in force
    mean_reward: dict[str, float]  # per model, over the examples it has an outcome for


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """A run-time change an operator made (weights, exploration, shadow mode, a policy load)."""

    ts: float
    kind: str
    payload: dict[str, object]


@dataclass(slots=True)
class JudgeSample:
    """A completed proxy event kept for the judge: its conversation and answer, with the verdict.

    `status`: new (waiting), judged, skipped (nothing to learn from a verdict: the event was already
    learned or a user rated it), failed (the judge never gave a usable answer).
    """

    event_id: str
    ts: float
    model: str
    prompt: str  # the conversation as JSON (the request's messages)
    response: str  # the answer's text
    status: str = "new"
    attempts: int = 0
    quality: float | None = None
    cost_usd: float = 0.0
    note: str = ""
