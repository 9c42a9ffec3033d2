"""OpenAI chat-completions proxy mode, the pure part: requests in, routing inputs and measurements out.

- `parse_chat` validates a `/v1/chat/completions` body and turns the conversation into what
  `Router.route` takes: the query (the last user message), metadata features (turn count, system
  prompt size, tools present, response format, plus a named profile's metadata), the capabilities
  the request needs (tools, vision, json_mode), the requested `max_tokens` and the size of the
  whole prompt.
- `StreamMeter` reads the server-sent events of a streamed answer as they pass through (it never
  holds them back) and notes the first token, the answer's size or text, and `usage`.
- `tokens_used` takes the upstream's `usage`, or counts when it is absent: characters / 4, the
  same estimate the router uses for prompts.
- `ProxyError` and `exhausted`: the proxy's errors in the OpenAI shape
  (`{"error": {"message", "type", "param", "code", ...}}`), naming the rule or the attempts and the
  real elapsed time; `attempt_headers` say how many attempts, and which models, an answer took.

No I/O here: the handlers in server.py and the client in upstream.py do the talking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

from banditroute.api.requests import ApiError, check_metadata
from banditroute.catalog import Catalog
from banditroute.features import estimate_tokens
from banditroute.types import ModelSpec

AUTO = "auto"
EVENT_HEADER = "x-banditroute-event-id"
REWARD_TOKEN_HEADER = "x-banditroute-reward-token"
MODEL_HEADER = "x-banditroute-model"  # the model that served the answer
ATTEMPTS_HEADER = "x-banditroute-attempts"  # upstream attempts made for this answer, fallbacks included
MODELS_HEADER = "x-banditroute-models"  # the models tried, in order, comma-separated
# The OpenAI SDKs' own header: "false" where the proxy already tried the fallbacks, so a client
# retry would only make a new decision (and a new learned failure) for the same request.
SHOULD_RETRY_HEADER = "x-should-retry"
# Upstream answers after which the next fallback is tried, with the error fed back for them.
RETRY_STATUS = {429: "rate_limited"}
RETRY_SERVER_ERROR = 500  # this status and above: server_error
_JSON_FORMATS = ("json_object", "json_schema")


class ProxyError(ApiError):
    """An error of the proxy, in the OpenAI shape the SDKs read; `details` add fields beside `code`."""

    def __init__(self, status: int, code: str, message: str, **details: Any):
        super().__init__(status, code, message)
        self.details = details

    @classmethod
    def of(cls, exc: ApiError) -> ProxyError:
        return exc if isinstance(exc, ProxyError) else cls(exc.status, exc.code, exc.message)

    def body(self) -> bytes:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        error = {"message": self.message, "type": kind, "param": None, "code": self.code, **self.details}
        return orjson.dumps({"error": error})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One upstream attempt that failed: which model, the feedback API's error name, what happened, how long."""

    model: str
    error: str
    detail: str
    elapsed_ms: float


def exhausted(attempts: list[Attempt], elapsed_ms: float, deadline_s: float, untried: int) -> ProxyError:
    """The answer when no upstream answered: 504 when the last failure was a timeout, else 502.

    The message names each attempt and the time it really took; `untried` models were left when
    the total deadline ran out.
    """
    last = attempts[-1].error if attempts else "timeout"
    status, code = (504, "upstream_timeout") if last == "timeout" else (502, "upstream_unavailable")
    tried = "; ".join(f"{a.model}: {a.error} ({a.detail}) after {a.elapsed_ms:.0f} ms" for a in attempts)
    message = f"no upstream answered: {len(attempts)} attempt(s) in {elapsed_ms:.0f} ms ({tried or 'none'})"
    if untried:
        message += f"; the total deadline of {deadline_s:g} s ran out with {untried} fallback(s) untried"
    return ProxyError(
        status,
        code,
        message,
        elapsed_ms=round(elapsed_ms, 1),
        attempts=[
            {"model": a.model, "error": a.error, "detail": a.detail, "elapsed_ms": round(a.elapsed_ms, 1)}
            for a in attempts
        ],
    )


def attempt_headers(tried: list[str]) -> dict[str, str]:
    """What every proxied answer says of its attempts: how many, and the models in order."""
    return {ATTEMPTS_HEADER: str(len(tried)), MODELS_HEADER: ",".join(tried)}


@dataclass(slots=True)
class ChatRequest:
    body: dict[str, Any]
    requested: str  # the `model` the client asked for: "auto", a profile or a catalog model
    routed: bool  # False: an explicit catalog model, passed through
    query: str
    metadata: dict[str, Any]
    max_output_tokens: int | None
    input_tokens: int  # estimate for the whole prompt (every message, tool definitions)
    stream: bool
    include_usage: bool  # the client asked for a final usage chunk


def parse_chat(
    obj: dict[str, Any], catalog: Catalog, profiles: Mapping[str, Mapping[str, Any]], max_query_chars: int
) -> ChatRequest:
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "invalid_model", 'model must be "auto", a router profile or a catalog model name')
    routed = model == AUTO or model in profiles
    if not routed and model not in catalog:
        raise ApiError(
            404,
            "model_not_found",
            f'unknown model {model[:200]!r}; GET /v1/models lists "auto", the profiles and the catalog',
        )
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "invalid_messages", "messages must be a non-empty list of message objects")
    stream = obj.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "invalid_stream", "stream must be true or false")
    max_out = obj.get("max_completion_tokens", obj.get("max_tokens"))
    if max_out is not None and (
        isinstance(max_out, bool) or not isinstance(max_out, int) or not 1 <= max_out <= 10_000_000
    ):
        raise ApiError(400, "invalid_max_tokens", "max_tokens must be an integer in 1..10000000")
    texts = [message_text(m.get("content")) for m in messages]
    users = [t for m, t in zip(messages, texts) if m.get("role") == "user"]
    query = users[-1] if users else texts[-1]
    if not query.strip():
        raise ApiError(400, "invalid_messages", "the last user message has no text")
    total_chars = sum(len(t) for t in texts)
    if total_chars > max_query_chars:
        raise ApiError(
            413, "query_too_long", f"the messages have {total_chars} characters; the limit is {max_query_chars}"
        )
    tools = bool(obj.get("tools") or obj.get("functions"))
    metadata = conversation_metadata(messages, texts, obj, tools)
    if model in profiles:
        metadata.update(profiles[model])
    check_metadata(metadata)
    options = obj.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    tool_chars = len(orjson.dumps(obj.get("tools") or obj.get("functions"))) if tools else 0
    prompt_tokens = estimate_tokens(query) + (total_chars - len(query) + tool_chars + 3) // 4
    return ChatRequest(obj, model, routed, query, metadata, max_out, prompt_tokens, stream, include_usage)


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def _has_image(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(p, dict) and p.get("type") in ("image_url", "input_image")
        for m in messages
        if isinstance(m.get("content"), list)
        for p in m["content"]
    )


def conversation_metadata(
    messages: list[dict[str, Any]], texts: list[str], body: Mapping[str, Any], tools: bool
) -> dict[str, Any]:
    """Routing metadata from the conversation's shape; also the capabilities it needs."""
    turns = sum(1 for m in messages if m.get("role") == "user")
    system_chars = sum(len(t) for m, t in zip(messages, texts) if m.get("role") in ("system", "developer"))
    fmt = body.get("response_format")
    raw_type = fmt.get("type") if isinstance(fmt, dict) else None
    fmt_type = raw_type if isinstance(raw_type, str) else "none"
    capabilities = []
    if tools:
        capabilities.append("tools")
    if _has_image(messages):
        capabilities.append("vision")
    if fmt_type in _JSON_FORMATS:
        capabilities.append("json_mode")
    meta: dict[str, Any] = {
        # powers of two keep the categories few: 1, 2-3, 4-7, ...
        "turns": f"t{turns.bit_length()}",
        "system_prompt": f"c{(system_chars // 100).bit_length()}" if system_chars else "none",
        "tools": tools,
        "response_format": fmt_type[:64],
    }
    if capabilities:
        meta["capabilities"] = capabilities
    return meta


def upstream_ready(spec: ModelSpec, environ: Mapping[str, str]) -> bool:
    """A model can be proxied when it has an upstream and, if it names a key variable, the key is set."""
    return bool(spec.base_url) and (not spec.api_key_env or bool(environ.get(spec.api_key_env)))


def upstream_request(
    spec: ModelSpec, body: dict[str, Any], environ: Mapping[str, str]
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and body for one upstream attempt: the client's body under the upstream's model name."""
    assert spec.base_url
    url = spec.base_url.rstrip("/") + "/chat/completions"
    headers = {"content-type": "application/json"}
    if spec.api_key_env:
        headers["authorization"] = f"Bearer {environ.get(spec.api_key_env, '')}"
    forwarded = dict(body, model=spec.upstream_model or spec.name)
    return url, headers, orjson.dumps(forwarded)


def retry_error(status: int) -> str | None:
    """The `error` fed back for an upstream status after which the next model is tried; None: not retried."""
    if status >= RETRY_SERVER_ERROR:
        return "server_error"
    return RETRY_STATUS.get(status)


def sampled(event_id: str, rate: float) -> bool:
    """Whether an event is kept for the judge; a draw of its own, independent of the routing draw."""
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(event_id.encode(), digest_size=8, person=b"judge").digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0 < rate


@dataclass(slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    counted: bool  # True: estimated here because the upstream sent no usage


def tokens_used(usage: Any, input_estimate: int, output_chars: int) -> Usage:
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if _count(prompt) and _count(completion):
            return Usage(prompt, completion, False)
    return Usage(input_estimate, (output_chars + 3) // 4, True)


def _count(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def answer_text(message: Any) -> str:
    """A message's (or a streamed delta's) content plus its tool calls' arguments."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    out = content if isinstance(content, str) else ""
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                out += str(fn.get("name") or "") + str(fn.get("arguments") or "")
    return out


def completion_text(obj: Any) -> str | None:
    """The answer of a non-streamed completion; None when the body is not a completion."""
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        return None
    choices = obj["choices"]
    return "".join(answer_text(c.get("message")) for c in choices if isinstance(c, dict))


@dataclass(slots=True)
class StreamMeter:
    """Watches a streamed answer's server-sent events go by; keeps the text only when asked to."""

    keep_text: bool = False
    first_token: bool = False
    chars: int = 0
    usage: Any = None
    done: bool = False
    text: list[str] = field(default_factory=list)
    _tail: bytes = b""

    def feed(self, chunk: bytes) -> bool:
        """Take the next bytes; returns True when they carried the answer's first token."""
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        before = self.first_token
        for line in lines:
            self._line(line.strip())
        return self.first_token and not before

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if event.get("usage"):
            self.usage = event["usage"]
        for choice in event.get("choices") or ():
            piece = answer_text(choice.get("delta")) if isinstance(choice, dict) else ""
            if piece:
                self.first_token = True
                self.chars += len(piece)
                if self.keep_text:
                    self.text.append(piece)


def models_list(catalog: Catalog, profiles: Mapping[str, Any]) -> dict[str, Any]:
    """`GET /v1/models` in the OpenAI shape: "auto", the profiles, then the catalog."""
    names = [AUTO, *profiles, *catalog.names]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": "banditroute"} for n in names],
    }
