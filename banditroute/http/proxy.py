"""The OpenAI-compatible proxy: /v1/chat/completions and /v1/models.

A chat request is routed (or passed through to the model it names), forwarded to the upstream with
the decision's fallbacks inside the deadlines, its answer relayed (a stream chunk by chunk), and what
was measured fed back as a system part, exactly like a POST /reward; a sampled share is kept for
the judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Coroutine
from typing import Any

import orjson
import structlog
from aiohttp import web

from banditroute.api import chat as chat_api
from banditroute.api.requests import ApiError
from banditroute.http.middleware import json_response, read_object
from banditroute.http.state import BOOKKEEPING, SERVICE, UPSTREAM
from banditroute.http.upstream import Reply, UpstreamError
from banditroute.rules import NoModelAllowed
from banditroute.service.base import RewardRefused, Service, UnknownEvent
from banditroute.store.sqlite import StoreError
from banditroute.types import Decision, FeedbackPart, JudgeSample

log = structlog.get_logger("banditroute.http.proxy")

EVENT_HEADER = chat_api.EVENT_HEADER
REWARD_TOKEN_HEADER = chat_api.REWARD_TOKEN_HEADER
MODEL_HEADER = chat_api.MODEL_HEADER


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Route (or pass through), forward to the upstream with fallbacks, measure, feed back.

    Every error is in the OpenAI shape (`chat_api.ProxyError`), as the SDKs expect of this path.
    """
    try:
        return await _chat_completions(request)
    except ApiError as exc:
        raise chat_api.ProxyError.of(exc) from None


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    started = time.monotonic()
    service = request.app[SERVICE]
    config = service.config
    catalog = service.router.catalog
    chat = chat_api.parse_chat(
        await read_object(request), catalog, config.proxy.profiles, config.server.max_query_chars
    )
    ready = frozenset(m.name for m in catalog.specs if chat_api.upstream_ready(m, os.environ))
    if chat.routed:
        restriction = ("upstream", ready)
    elif chat.requested not in ready:
        raise ApiError(400, "model_not_proxied", f"model {chat.requested!r} has no base_url or its key is not set")
    else:
        chat.metadata.pop("capabilities", None)  # an explicit model is not second-guessed
        restriction = ("requested_model", frozenset({chat.requested}))
    try:
        decision = await service.route(
            chat.query, chat.metadata, chat.max_output_tokens, input_tokens=chat.input_tokens, restrict_to=restriction
        )
    except NoModelAllowed as exc:
        raise chat_api.ProxyError(
            422, "no_model_allowed", f"{exc} (excluded: {exc.excluded})", rule=exc.rule, excluded=exc.excluded
        ) from None
    candidates = [decision.model, *decision.fallbacks]  # the next best allowed, none cooling down
    deadline = started + config.proxy.total_deadline_s
    failed: list[chat_api.Attempt] = []
    for name in candidates:
        if deadline - time.monotonic() <= 0:
            break
        attempt_started = time.monotonic()
        spec = catalog[name]
        url, headers, body = chat_api.upstream_request(spec, chat.body, os.environ)
        attempt_deadline = min(deadline, attempt_started + config.proxy.attempt_timeout_s)
        tried = [*(a.model for a in failed), name]
        try:
            reply = await request.app[UPSTREAM].send(url, headers, body, attempt_deadline - time.monotonic())
            error = chat_api.retry_error(reply.status)
            if error is None:
                return await _answer(
                    request,
                    chat,
                    decision,
                    tried,
                    reply,
                    started,
                    attempt_deadline if chat.stream else deadline,
                )
            reply.close()
            raise UpstreamError(error, f"HTTP {reply.status}")
        except UpstreamError as exc:
            failed.append(chat_api.Attempt(name, exc.kind, exc.detail, 1000 * (time.monotonic() - attempt_started)))
            log.warning(
                "upstream_failed",
                event_id=decision.event_id,
                model=name,
                error=exc.kind,
                detail=exc.detail,
                attempt=len(failed) - 1,
            )
            if len(failed) == 1:  # the failure of the model the policy chose is its feedback
                await _bookkeep(request, _feed_back(service, decision, _failed(decision, exc.kind, started)))
    elapsed_ms = 1000 * (time.monotonic() - started)
    refusal = chat_api.exhausted(failed, elapsed_ms, config.proxy.total_deadline_s, len(candidates) - len(failed))
    headers = _headers(service, decision, [a.model for a in failed])
    headers[chat_api.SHOULD_RETRY_HEADER] = "false"  # the fallbacks were the retries
    return web.Response(body=refusal.body(), status=refusal.status, headers=headers, content_type="application/json")


def _headers(service: Service, decision: Decision, tried: list[str]) -> dict[str, str]:
    """The headers of every routed answer: the event, its reward token, the attempts and models tried."""
    return {
        EVENT_HEADER: decision.event_id,
        REWARD_TOKEN_HEADER: service.reward_token(decision),
        **chat_api.attempt_headers(tried),
    }


async def _answer(
    request: web.Request,
    chat: chat_api.ChatRequest,
    decision: Decision,
    tried: list[str],
    reply: Reply,
    started: float,
    deadline: float,
) -> web.StreamResponse:
    """Pass a non-retried upstream answer (of `tried[-1]`) to the client; raises UpstreamError while a
    fallback is still possible."""
    service = request.app[SERVICE]
    config = service.config
    name, chosen = tried[-1], len(tried) == 1
    headers = {**_headers(service, decision, tried), MODEL_HEADER: name}
    keep = chosen and chat_api.sampled(decision.event_id, config.judge.sample_rate)
    try:
        if chat.stream and reply.status < 300:
            meter = chat_api.StreamMeter(keep_text=keep)
            first = await reply.next_chunk(deadline - time.monotonic())  # silent before a byte: try the next
            response = web.StreamResponse(status=reply.status, headers=headers)
            response.content_type = "text/event-stream"
            response.headers["cache-control"] = "no-cache"
            await response.prepare(request)
            ttft, broke = await _relay(response, reply, meter, first, started)
            if broke is not None and chosen:  # the upstream failed mid-answer: too late for a fallback
                await _bookkeep(request, _feed_back(service, decision, _failed(decision, broke, started)))
            if ttft is None:  # cut short: the client went away, or the upstream broke
                return response
            text, chars = "".join(meter.text), meter.chars
            usage = meter.usage
        else:
            raw = await reply.read(config.proxy.max_response_bytes, deadline - time.monotonic())
            obj = _json_or_none(raw)
            answer = chat_api.completion_text(obj)
            if reply.status < 300 and answer is None:
                raise UpstreamError("server_error", "the upstream's answer is not a chat completion")
            if reply.status >= 300:  # a client error, returned as it is; not the model's fault, nor retried
                headers[chat_api.SHOULD_RETRY_HEADER] = "false"
            response = web.Response(body=raw, status=reply.status, headers=headers, content_type="application/json")
            await response.prepare(request)
            await response.write_eof()
            if reply.status >= 300:
                return response
            ttft, text, chars = None, answer or "", len(answer or "")
            usage = obj.get("usage") if isinstance(obj, dict) else None
    finally:
        reply.close()
    latency_ms = 1000 * (time.monotonic() - started)
    if not chosen:  # the event already learned that its model failed; this answer is the fallback's
        log.info("proxy_fallback_served", event_id=decision.event_id, model=name, latency_ms=round(latency_ms, 1))
        return response
    spec = service.router.catalog[name]
    used = chat_api.tokens_used(usage, chat.input_tokens, chars)
    part = FeedbackPart(
        decision.event_id,
        time.time(),
        latency_ms=latency_ms,
        ttft_ms=ttft,
        input_tokens=used.input_tokens,
        output_tokens=used.output_tokens,
        cost_usd=spec.cost_usd(used.input_tokens, used.output_tokens),
        source="system",
    )
    sample = (
        JudgeSample(decision.event_id, time.time(), name, orjson.dumps(chat.body.get("messages")).decode(), text)
        if keep
        else None
    )
    await _bookkeep(request, _record(service, decision, part, sample))
    return response


def _failed(decision: Decision, error: str, started: float) -> FeedbackPart:
    """The system part for a chosen model that failed: which error, and after how long."""
    latency_ms = 1000 * (time.monotonic() - started)
    return FeedbackPart(decision.event_id, time.time(), source="system", error=error, latency_ms=latency_ms)


async def _bookkeep(request: web.Request, work: Coroutine[Any, Any, None]) -> None:
    """Run the proxy's own records to the end even when the client hangs up (which cancels the handler)."""
    pending = request.app[BOOKKEEPING]
    task = asyncio.get_running_loop().create_task(work)
    pending.add(task)
    task.add_done_callback(pending.discard)
    await asyncio.shield(task)


async def _record(service: Service, decision: Decision, part: FeedbackPart, sample: JudgeSample | None) -> None:
    await _feed_back(service, decision, part)
    if sample is not None:
        await _keep_sample(service, sample)


async def _relay(
    response: web.StreamResponse, reply: Reply, meter: chat_api.StreamMeter, first: bytes, started: float
) -> tuple[float | None, str | None]:
    """Write each upstream chunk as it arrives.

    Returns the time to first token in ms (None when cut short) and the upstream's error, if it broke.
    """
    ttft = None
    chunk = first
    try:
        while chunk:
            if meter.feed(chunk) and ttft is None:
                ttft = 1000 * (time.monotonic() - started)
            await response.write(chunk)
            chunk = await reply.next_chunk()
    except UpstreamError as exc:
        log.warning("upstream_broke_mid_stream", error=exc.kind, detail=exc.detail)
        # The status line is sent: tell the client in the stream (the OpenAI SDK raises on it).
        with contextlib.suppress(ConnectionError):
            await response.write(
                b"data: " + orjson.dumps({"error": {"code": exc.kind, "message": exc.detail}}) + b"\n\n"
            )
            await response.write_eof()
        return None, exc.kind
    except ConnectionError:
        log.info("client_went_away")
        return None, None
    await response.write_eof()
    return (ttft if ttft is not None else 1000 * (time.monotonic() - started)), None


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def _feed_back(service: Service, decision: Decision, part: FeedbackPart) -> None:
    """System feedback measured by the proxy, stored and joined exactly like a POST /reward (with its token)."""
    try:
        await service.reward(part, service.reward_token(decision))
    except (StoreError, UnknownEvent, RewardRefused) as exc:  # the client's answer must not fail for its bookkeeping
        log.error("proxy_feedback_failed", event_id=part.event_id, error=str(exc))


async def _keep_sample(service: Service, sample: JudgeSample) -> None:
    judge = service.config.judge
    sample.prompt = sample.prompt[: judge.max_sample_chars]
    sample.response = sample.response[: judge.max_sample_chars]
    try:
        await service.eventlog.call(
            service.store.put_sample, sample, time.time() - judge.retention_s, judge.max_samples
        )
    except StoreError as exc:
        log.error("judge_sample_failed", event_id=sample.event_id, error=str(exc))


async def v1_models(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return json_response(chat_api.models_list(service.router.catalog, service.config.proxy.profiles))
