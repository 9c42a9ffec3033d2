"""banditroute as LiteLLM's router: it picks the model for each call, and LiteLLM's callbacks report how it went.

    bandit = Banditroute("http://127.0.0.1:8080")
    router = litellm.Router(model_list=[...])   # one model_name per banditroute catalog model
    bandit.attach(router)
    await router.acompletion(model="auto", messages=[...])

- In a LiteLLM `Router` (`attach`) it is the routing strategy: a call to `model="auto"` is routed by
  banditroute and sent to a deployment of the LiteLLM `model_name` its model maps to. A retry, when
  LiteLLM makes one, goes to banditroute's next fallback (LiteLLM 1.110 does not retry the virtual
  `auto` group: a failed call raises). Calls to any other model name are spread over that model's
  deployments at random, as LiteLLM's default strategy does.
- In the LiteLLM proxy it is a callback (`litellm_settings.callbacks`): its `async_pre_call_hook` rewrites
  `model: auto` to the chosen model's name before the proxy routes (docs/integrations/litellm.md).

Either way, its logging callbacks send the chosen model's outcome to `/reward` as `source="system"`:
latency, tokens, LiteLLM's `response_cost` (when LiteLLM can price the model), or the error.
Quality comes later from the app or the judge; the decision travels in the request metadata, and
`decision_of(metadata)` reads it back where LiteLLM hands the metadata on (a callback, a hook).
Only the first attempt is reported, as the proxy of banditroute does: the failure of the model the
policy chose is its feedback; a fallback's answer is not that model's.

Install with `pip install 'banditroute[litellm]'`; nothing else in banditroute imports this module.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import structlog

from banditroute.client import AsyncClient, BanditrouteError, Client, RouteDecision

try:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.types.router import CustomRoutingStrategyBase
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("banditroute.integrations.litellm needs LiteLLM: pip install 'banditroute[litellm]'") from exc

log = structlog.get_logger("banditroute.integrations.litellm")

STATE_KEY = "banditroute"  # in the request metadata: the decision and the attempts made
METADATA_KEY = "banditroute_metadata"  # in the request metadata: the caller's metadata for /route


class UnservedModel(LookupError):
    """banditroute chose a model that no LiteLLM deployment serves: the two catalogs disagree."""


def query_of(messages: Sequence[Mapping[str, Any]] | None, input: Any = None) -> str:
    """The text routed on: the last user message (its text parts, for multi-part content), else `input`."""
    for message in reversed(messages or ()):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(input, str):
        return input
    raise ValueError("nothing to route on: the request has no user message with text")


def error_kind(exc: BaseException | None) -> str | None:
    """banditroute's `error` for a failed call; None for a refusal of the request itself (not the model's fault)."""
    if isinstance(exc, litellm.ContentPolicyViolationError):
        return "content_filter"
    if isinstance(exc, litellm.Timeout):
        return "timeout"
    if isinstance(exc, litellm.APIConnectionError):
        return "connection_error"
    status = getattr(exc, "status_code", None)
    if status == 429:
        return "rate_limited"
    if status == 408:
        return "timeout"
    if isinstance(status, int) and status >= 500:
        return "server_error"
    if isinstance(status, int) and 400 <= status < 500:
        return None
    return "other"


def decision_of(metadata: Mapping[str, Any] | None) -> RouteDecision | None:
    """The decision banditroute made for a request, from its metadata (to send quality later)."""
    state = (metadata or {}).get(STATE_KEY)
    return RouteDecision.from_response(state["decision"]) if isinstance(state, dict) else None


def _bucket(request: dict[str, Any]) -> dict[str, Any]:
    """The request's metadata dict that LiteLLM hands on to its logging callbacks."""
    for key in ("metadata", "litellm_metadata"):
        if isinstance(request.get(key), dict):
            return request[key]
    request["metadata"] = {}
    return request["metadata"]


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    return max(0.0, 1000 * (end - start).total_seconds()) if start and end else None


class Banditroute(CustomLogger, CustomRoutingStrategyBase):
    """Routes `route_model` calls through banditroute and reports their outcome.

    `models`: banditroute model name -> LiteLLM `model_name` (default: the same name).
    `default_model`: the LiteLLM model_name used when banditroute cannot answer (None: the call fails).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        api_key: str | None = None,
        models: Mapping[str, str] | None = None,
        route_model: str = "auto",
        default_model: str | None = None,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
    ):
        super().__init__()
        self.client = client or Client(base_url, api_key=api_key)
        self.async_client = async_client or AsyncClient(base_url, api_key=api_key)
        self.models = dict(models or {})
        self.route_model = route_model
        self.default_model = default_model
        self.router: Any = None
        self._rng = random.Random()
        # Marks the requests this instance routed: LiteLLM calls every registered logger with every
        # event, and another instance (another Router, another banditroute) must not report them.
        # Public and a string on purpose: LiteLLM keeps one logger per class and public scalar
        # attributes, so without it a second instance would never be called.
        self.tag = secrets.token_hex(8)

    def attach(self, router: Any) -> None:
        """Make this the routing strategy of `router` and add it to LiteLLM's callbacks."""
        self.router = router
        if hasattr(router, "register_plugin"):  # LiteLLM >= 1.110
            router.register_plugin(self)
        else:
            router.set_custom_routing_strategy(self)
        if self not in litellm.callbacks:
            litellm.callbacks.append(self)

    def detach(self) -> None:
        """Leave LiteLLM's callbacks (every list LiteLLM copied this logger into)."""
        manager = getattr(litellm, "logging_callback_manager", None)
        if manager is not None and hasattr(manager, "remove_callback_from_all_lists"):
            manager.remove_callback_from_all_lists(self)
        elif self in litellm.callbacks:
            litellm.callbacks.remove(self)

    # -- routing: the Router's strategy ------------------------------------------------------

    async def async_get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: Any = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        request = request_kwargs if request_kwargs is not None else {}
        if model != self.route_model:
            return self._any_of(model)
        state = _bucket(request).get(STATE_KEY)
        if state is None:
            try:
                decision = await self.async_client.route(query_of(messages, input), **self._route_args(request))
            except BanditrouteError as exc:
                return self._without_banditroute(exc)
            state = self._start(request, decision)
        return self._pick(state)

    def get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: Any = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        request = request_kwargs if request_kwargs is not None else {}
        if model != self.route_model:
            return self._any_of(model)
        state = _bucket(request).get(STATE_KEY)
        if state is None:
            try:
                decision = self.client.route(query_of(messages, input), **self._route_args(request))
            except BanditrouteError as exc:
                return self._without_banditroute(exc)
            state = self._start(request, decision)
        return self._pick(state)

    def _route_args(self, request: Mapping[str, Any]) -> dict[str, Any]:
        metadata = request.get("metadata") or request.get("litellm_metadata") or {}
        args = dict(metadata.get(METADATA_KEY) or {})
        max_out = request.get("max_completion_tokens") or request.get("max_tokens")
        if isinstance(max_out, int) and max_out > 0:
            args["max_output_tokens"] = max_out
        return args

    def _start(self, request: dict[str, Any], decision: RouteDecision) -> dict[str, Any]:
        """Keep the decision in the request: the retries and the logging callbacks read it there."""
        name = self.models.get(decision.model, decision.model)
        if not self._deployments(name):
            raise UnservedModel(
                f"banditroute chose {decision.model!r}, but no LiteLLM deployment has model_name {name!r}: "
                "map it with models=, or remove it from the banditroute catalog"
            )
        served = [self.models.get(m, m) for m in decision.fallbacks]
        state = {
            "by": self.tag,
            "decision": _plain(decision),
            "candidates": [name, *(m for m in served if self._deployments(m))],
            "attempt": -1,  # _pick makes it 0
            "deployment_id": None,
            "reported": False,
        }
        _bucket(request)[STATE_KEY] = state
        return state

    def _pick(self, state: dict[str, Any]) -> dict[str, Any]:
        """The chosen model first; each retry LiteLLM makes goes to the next of banditroute's fallbacks."""
        state["attempt"] += 1
        candidates = state["candidates"]
        if state["attempt"] >= len(candidates):
            raise UnservedModel(f"every model banditroute allowed has been tried: {candidates}")
        deployment = self._any_of(candidates[state["attempt"]])
        if state["attempt"] == 0:
            state["deployment_id"] = deployment.get("model_info", {}).get("id")
        return deployment

    def _without_banditroute(self, exc: BanditrouteError) -> dict[str, Any]:
        if self.default_model is None:
            raise exc
        log.warning("banditroute_unavailable", error=str(exc), model=self.default_model)
        return self._any_of(self.default_model)

    def _deployments(self, model_name: str) -> list[dict[str, Any]]:
        if self.router is None:
            raise RuntimeError("Banditroute.attach(router) first")
        registry = self.router.registry() if hasattr(self.router, "registry") else None
        deployments = registry.all() if registry is not None else self.router.model_list
        return [d for d in deployments if d.get("model_name") == model_name]

    def _any_of(self, model_name: str) -> dict[str, Any]:
        deployments = self._deployments(model_name)
        if not deployments:
            raise UnservedModel(f"no LiteLLM deployment has model_name {model_name!r}")
        return self._rng.choice(deployments)

    # -- routing: the proxy's pre-call hook ----------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict:
        """In the LiteLLM proxy: `model: auto` becomes the chosen model's name before the proxy routes."""
        if data.get("model") != self.route_model:
            return data
        try:
            decision = await self.async_client.route(
                query_of(data.get("messages"), data.get("input")), **self._route_args(data)
            )
        except BanditrouteError as exc:
            # The request goes on as it came: to `default_model` if set, else to the proxy's own `auto`.
            log.warning("banditroute_unavailable", error=str(exc), model=self.default_model or self.route_model)
            if self.default_model is not None:
                data["model"] = self.default_model
            return data
        name = self.models.get(decision.model, decision.model)
        data["model"] = name
        # No deployment id here (the proxy's Router picks one): the callbacks match the model group.
        _bucket(data)[STATE_KEY] = {
            "by": self.tag,
            "decision": _plain(decision),
            "model_group": name,
            "reported": False,
        }
        return data

    # -- feedback: LiteLLM's logging callbacks -----------------------------------------------------

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        report = self._report(kwargs, response_obj, start_time, end_time, failed=False)
        if report is not None:
            await self._send_async(*report)

    async def async_log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        report = self._report(kwargs, response_obj, start_time, end_time, failed=True)
        if report is not None:
            await self._send_async(*report)

    def log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        report = self._report(kwargs, response_obj, start_time, end_time, failed=False)
        if report is not None:
            self._send(*report)

    def log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        report = self._report(kwargs, response_obj, start_time, end_time, failed=True)
        if report is not None:
            self._send(*report)

    def _report(
        self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any, *, failed: bool
    ) -> tuple[RouteDecision, dict[str, Any]] | None:
        """The feedback for this attempt, or None when it is not the chosen model's first outcome."""
        params = kwargs.get("litellm_params") or {}
        metadata = params.get("metadata") or kwargs.get("metadata") or {}
        state = metadata.get(STATE_KEY)
        if not isinstance(state, dict) or state.get("by") != self.tag or state.get("reported"):
            return None
        if "deployment_id" in state:
            chosen = (params.get("model_info") or {}).get("id") == state["deployment_id"]
        else:
            chosen = metadata.get("model_group") == state.get("model_group")
        if not chosen:
            return None
        values: dict[str, Any] = {"latency_ms": _ms(start_time, end_time)}
        if failed:
            values["error"] = error_kind(kwargs.get("exception"))
            if values["error"] is None:
                return None
        else:
            usage = getattr(response_obj, "usage", None)
            values["input_tokens"] = getattr(usage, "prompt_tokens", None)
            values["output_tokens"] = getattr(usage, "completion_tokens", None)
            cost = kwargs.get("response_cost")
            # LiteLLM's Router reports 0.0 for a model missing from its price list: banditroute then
            # prices the tokens from its own catalog (which is also right for a free local model).
            values["cost_usd"] = cost if isinstance(cost, int | float) and cost > 0 else None
            if kwargs.get("stream"):
                values["ttft_ms"] = _ms(start_time, kwargs.get("completion_start_time"))
        state["reported"] = True  # before any await: a concurrent callback for the same call sends nothing
        return RouteDecision.from_response(state["decision"]), values

    def _send(self, decision: RouteDecision, values: dict[str, Any]) -> None:
        try:
            self.client.reward(decision, source="system", **values)
        except BanditrouteError as exc:  # the call's answer must not fail for its bookkeeping
            log.error("banditroute_feedback_failed", event_id=decision.event_id, error=str(exc))

    async def _send_async(self, decision: RouteDecision, values: dict[str, Any]) -> None:
        try:
            await self.async_client.reward(decision, source="system", **values)
        except BanditrouteError as exc:
            log.error("banditroute_feedback_failed", event_id=decision.event_id, error=str(exc))


def _plain(decision: RouteDecision) -> dict[str, Any]:
    """The decision as plain JSON values: LiteLLM's other loggers may serialise the metadata."""
    return orjson.loads(decision.to_json())
