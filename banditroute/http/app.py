"""The aiohttp service: parse, validate, call the Service, answer JSON. The one module that knows aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web

from banditroute import snapshot
from banditroute.api import chat as chat_api
from banditroute.api import openapi
from banditroute.api.requests import (
    ApiError,
    parse_exploration,
    parse_json_object,
    parse_reward,
    parse_reward_token,
    parse_route,
    parse_shadow,
    parse_weights,
)
from banditroute.auth import ADMIN_KEY_ENV, Gate, admin_keys, auth_enabled
from banditroute.config import Config, ConfigError
from banditroute.http.upstream import Reply, Timeouts, Upstream, UpstreamError
from banditroute.rules import NoModelAllowed, UnknownModel
from banditroute.service.base import RewardRefused, Service, UnknownEvent
from banditroute.service.controls import IncompatiblePolicy, ReloadError
from banditroute.service.single import LearningService
from banditroute.store.sqlite import StoreError
from banditroute.store.writer import Overloaded
from banditroute.telemetry.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from banditroute.types import Decision, FeedbackPart, JudgeSample

log = structlog.get_logger("banditroute.http.app")

SERVICE = web.AppKey("service", Service)
GATE = web.AppKey("gate", Gate)
# Seconds a client is asked to wait after a 503 for an overloaded or failing event log.
_RETRY_AFTER_STORE_S = 1
UPSTREAM = web.AppKey("upstream", Upstream)
BOOKKEEPING = web.AppKey("bookkeeping", set)
EVENT_HEADER = "x-banditroute-event-id"
REWARD_TOKEN_HEADER = "x-banditroute-reward-token"
MODEL_HEADER = "x-banditroute-model"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str, retry_after_s: float = 0.0) -> web.Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))} if retry_after_s > 0 else None
    return web.Response(
        body=ApiError(status, code, message).body(), status=status, content_type="application/json", headers=headers
    )


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers `{"error": {...}}`; nothing a client sends can make a handler crash the server."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.Response(body=exc.body(), status=exc.status, content_type="application/json")
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SERVICE].config.server.max_body_bytes
        return error_response(413, "body_too_large", f"the body is larger than the limit of {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.reason)
        if "Allow" in exc.headers:  # a 405 names the methods the path does take (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Overloaded as exc:
        log.warning("overloaded", error=str(exc))
        return error_response(503, "overloaded", "too many writes are waiting; retry shortly", _RETRY_AFTER_STORE_S)
    except StoreError as exc:
        log.error("store_unavailable", error=str(exc))
        return error_response(
            503, "store_unavailable", "the event log cannot be written now; retry later", _RETRY_AFTER_STORE_S
        )
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return error_response(500, "internal_error", "internal error; the request was not applied")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Before any body is read: API key, scope and rate limit, then the declared body size."""
    verdict = request.app[GATE].check(request.path, request.headers.get("Authorization"), time.monotonic())
    if verdict.status:
        response = error_response(verdict.status, verdict.code, verdict.message, verdict.retry_after_s)
        if verdict.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    limit = request.app[SERVICE].config.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return error_response(413, "body_too_large", f"the body is larger than the limit of {limit} bytes")
    return await handler(request)


async def read_object(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body, which must arrive within `server.read_timeout_s` (else 408)."""
    timeout = request.app[SERVICE].config.server.read_timeout_s
    try:
        async with asyncio.timeout(timeout):
            body = await request.read()
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"the body did not arrive within {timeout:g} s") from None
    return parse_json_object(body)


async def route(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    req = parse_route(await read_object(request), service.config.server.max_query_chars)
    if req.escalate_from is not None and not service.config.rules.escalation:
        raise ApiError(400, "escalation_disabled", "escalate_from is turned off (rules.escalation = false)")
    try:
        decision = await service.route(req.query, req.metadata, req.max_output_tokens, escalate_from=req.escalate_from)
    except NoModelAllowed as exc:
        raise ApiError(422, "no_model_allowed", f"{exc} (excluded: {exc.excluded})") from None
    except UnknownModel as exc:
        raise ApiError(400, "invalid_escalate_from", f"escalate_from names no catalog model: {exc}") from None
    return json_response(
        {
            "event_id": decision.event_id,
            "model": decision.model,
            "probability": decision.probability,
            "pmf": dict(zip(decision.models, decision.pmf)),
            "explored": decision.explored,
            "fallbacks": list(decision.fallbacks),
            "excluded": decision.excluded,
            "reason": decision.reason,
            "reward_token": service.reward_token(decision),
        }
    )


async def reward(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await read_object(request)
    part = parse_reward(body, time.time())
    try:
        answer = await service.reward(part, parse_reward_token(body))
    except UnknownEvent:
        raise ApiError(404, "unknown_event", "no decision has this event_id") from None
    except RewardRefused as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    return json_response(answer, status=202)


async def noop(request: web.Request) -> web.Response:
    """The HTTP floor for `make bench`: the same server, body read, a JSON answer, no routing."""
    await request.read()
    return json_response({})


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    healthy = service.eventlog is not None and service.eventlog.healthy
    return json_response({"status": "ok" if healthy else "degraded"}, status=200 if healthy else 503)


async def models(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    assert service.router is not None
    return json_response({"models": service.router.catalog.to_json()})


async def stats(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].stats())


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


def _page(name: str) -> bytes:
    return resources.files("banditroute").joinpath(f"data/{name}").read_bytes()


async def dashboard(request: web.Request) -> web.Response:
    return web.Response(body=_page("dashboard.html"), content_type="text/html", charset="utf-8")


async def dashboard_data(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].dashboard_data())


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi.document())


async def docs(request: web.Request) -> web.Response:
    return web.Response(body=_page("docs.html"), content_type="text/html", charset="utf-8")


# -- admin ---------------------------------------------------------------------------------------


async def admin_settings(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].settings())


async def admin_weights(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    current = (service.config.reward.cost_weight, service.config.reward.latency_weight)
    cost_weight, latency_weight = parse_weights(await read_object(request), current)
    return json_response(await service.set_weights(cost_weight, latency_weight))


async def admin_exploration(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return json_response(await service.set_exploration(parse_exploration(await read_object(request))))


async def admin_shadow(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    assert service.router is not None
    baseline = parse_shadow(await read_object(request), service.router.catalog.names)
    return json_response(await service.set_shadow(baseline))


async def admin_shadow_summary(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].shadow_summary())


async def admin_snapshot(request: web.Request) -> web.Response:
    ckpt = await request.app[SERVICE].checkpoint(force=True)
    if ckpt is None:
        raise ApiError(409, "policy_not_finite", "the live policy has NaN or infinite weights; nothing was written")
    return json_response(
        {
            "learned_seq": ckpt.learned_seq,
            "sha256": hashlib.sha256(ckpt.model).hexdigest(),
            "bytes": len(ckpt.model),
            "ts": ckpt.ts,
        }
    )


async def admin_policy_download(request: web.Request) -> web.Response:
    pf = request.app[SERVICE].policy_file()
    return web.Response(
        body=pf.dumps(),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="banditroute-policy-{pf.sha256[:12]}.json"'},
    )


async def admin_policy_load(request: web.Request) -> web.Response:
    try:
        pf = snapshot.loads(parse_json_object(await request.read()))
        described = await request.app[SERVICE].load_policy(pf)
    except snapshot.PolicyFileError as exc:
        raise ApiError(400, "invalid_policy", str(exc)) from None
    except IncompatiblePolicy as exc:
        raise ApiError(409, "incompatible_policy", str(exc)) from None
    return json_response(described)


async def admin_reload(request: web.Request) -> web.Response:
    """Re-read the configuration file: new catalog and rules at once, the learned policy kept."""
    try:
        summary = request.app[SERVICE].reload()
    except ReloadError as exc:
        raise ApiError(400, "invalid_config", str(exc)) from None
    return json_response({"status": "reloaded", **summary})


def create_gate(config: Config, environ: Any = os.environ) -> Gate:
    """The one auth mechanism: [auth] keys (and env keys merged into them) plus the [admin] key."""
    a = config.auth
    enabled = auth_enabled(a, config.server.host)
    keys = a.keys + admin_keys(config.admin.key_sha256, environ.get(ADMIN_KEY_ENV))
    if enabled and not keys:
        raise ConfigError(
            f'auth is on (host {config.server.host} is not loopback, or auth.mode = "on") but no API key is set:'
            ' add [auth].keys or BANDITROUTE_API_KEYS, or set auth.mode = "off" to run open on purpose'
        )
    return Gate(keys, enabled, a.route_rate_per_s, a.reward_rate_per_s, a.rate_burst_s, a.rate_max_clients)


# -- OpenAI-compatible proxy -----------------------------------------------------------------


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Route (or pass through), forward to the upstream with fallbacks, measure, feed back."""
    started = time.monotonic()
    service = request.app[SERVICE]
    assert service.router is not None
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
        raise ApiError(422, "no_model_allowed", f"{exc} (excluded: {exc.excluded})") from None
    candidates = [decision.model, *decision.fallbacks]  # the next best allowed, none cooling down
    deadline = started + config.proxy.total_deadline_s
    last_error = "timeout"
    for attempt, name in enumerate(candidates):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        spec = catalog[name]
        url, headers, body = chat_api.upstream_request(spec, chat.body, os.environ)
        attempt_deadline = min(deadline, time.monotonic() + config.proxy.attempt_timeout_s)
        try:
            reply = await request.app[UPSTREAM].send(url, headers, body, attempt_deadline - time.monotonic())
            error = chat_api.retry_error(reply.status)
            if error is None:
                return await _answer(
                    request,
                    chat,
                    decision,
                    name,
                    reply,
                    started,
                    attempt_deadline if chat.stream else deadline,
                    chosen=attempt == 0,
                )
            reply.close()
            raise UpstreamError(error, f"HTTP {reply.status}")
        except UpstreamError as exc:
            last_error = exc.kind
            log.warning(
                "upstream_failed",
                event_id=decision.event_id,
                model=name,
                error=exc.kind,
                detail=exc.detail,
                attempt=attempt,
            )
            if attempt == 0:  # the failure of the model the policy chose is its feedback
                await _bookkeep(
                    request,
                    _feed_back(
                        service,
                        decision,
                        FeedbackPart(
                            decision.event_id,
                            time.time(),
                            source="system",
                            error=exc.kind,
                            latency_ms=1000 * (time.monotonic() - started),
                        ),
                    ),
                )
    status, code = (504, "upstream_timeout") if last_error == "timeout" else (502, "upstream_unavailable")
    response = error_response(
        status,
        code,
        f"no upstream answered within {config.proxy.total_deadline_s} s "
        f"(tried {candidates[: attempt + 1]}; last error {last_error})",
    )
    response.headers[EVENT_HEADER] = decision.event_id
    response.headers[REWARD_TOKEN_HEADER] = service.reward_token(decision)
    return response


async def _answer(
    request: web.Request,
    chat: chat_api.ChatRequest,
    decision: Decision,
    name: str,
    reply: Reply,
    started: float,
    deadline: float,
    *,
    chosen: bool,
) -> web.StreamResponse:
    """Pass a non-retried upstream answer to the client; raises UpstreamError while a fallback is still possible."""
    service = request.app[SERVICE]
    config = service.config
    headers = {EVENT_HEADER: decision.event_id, MODEL_HEADER: name, REWARD_TOKEN_HEADER: service.reward_token(decision)}
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
                await _bookkeep(
                    request,
                    _feed_back(
                        service,
                        decision,
                        FeedbackPart(
                            decision.event_id,
                            time.time(),
                            source="system",
                            error=broke,
                            latency_ms=1000 * (time.monotonic() - started),
                        ),
                    ),
                )
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
            response = web.Response(body=raw, status=reply.status, headers=headers, content_type="application/json")
            await response.prepare(request)
            await response.write_eof()
            if reply.status >= 300:  # a client error, returned as it is; not the model's fault
                return response
            ttft, text, chars = None, answer or "", len(answer or "")
            usage = obj.get("usage") if isinstance(obj, dict) else None
    finally:
        reply.close()
    latency_ms = 1000 * (time.monotonic() - started)
    if not chosen:  # the event already learned that its model failed; this answer is the fallback's
        log.info("proxy_fallback_served", event_id=decision.event_id, model=name, latency_ms=round(latency_ms, 1))
        return response
    spec = service.router.catalog[name]  # type: ignore[union-attr]
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
    assert service.eventlog is not None and service.store is not None
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
    assert service.router is not None
    return json_response(chat_api.models_list(service.router.catalog, service.config.proxy.profiles))


def create_app(
    config: Config, config_path: str | Path | None = None, kind: type[Service[Any]] = LearningService
) -> web.Application:
    """The service; `config_path` is the file POST /admin/reload and SIGHUP re-read (None: the bundled one).

    `kind`: LearningService serves and learns; ServingService is a serving process of `serve --workers N`.
    """
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[errors_as_json, guard],
        handler_args={"max_headers": config.server.max_headers},
    )
    app[GATE] = create_gate(config)
    upstream = Upstream(
        Timeouts(config.proxy.connect_timeout_s, config.proxy.read_timeout_s, config.proxy.max_connections)
    )
    app[UPSTREAM] = upstream
    app[BOOKKEEPING] = set()

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        service = app[SERVICE] = await kind.open(config, config_path=config_path)

        def reload_on_signal() -> None:
            with contextlib.suppress(ReloadError):  # already logged; the running catalog stays
                service.reload()

        await upstream.start()
        loop = asyncio.get_running_loop()
        hup = _add_signal_handler(loop, reload_on_signal)
        yield
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
        await upstream.close()
        await asyncio.gather(*app[BOOKKEEPING], return_exceptions=True)
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/route", route)
    app.router.add_post("/reward", reward)
    app.router.add_post("/noop", noop)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard/data", dashboard_data)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
    app.router.add_get("/admin/settings", admin_settings)
    app.router.add_post("/admin/weights", admin_weights)
    app.router.add_post("/admin/exploration", admin_exploration)
    app.router.add_post("/admin/shadow", admin_shadow)
    app.router.add_get("/admin/shadow", admin_shadow_summary)
    app.router.add_post("/admin/snapshot", admin_snapshot)
    app.router.add_get("/admin/policy", admin_policy_download)
    app.router.add_post("/admin/policy", admin_policy_load)
    app.router.add_post("/admin/reload", admin_reload)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", v1_models)
    return app


def _add_signal_handler(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> bool:
    """SIGHUP reloads the catalog where the platform and thread allow signal handlers."""
    try:
        loop.add_signal_handler(signal.SIGHUP, callback)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        return False
    return True


def run(
    config: Config,
    config_path: str | Path | None = None,
    kind: type[Service[Any]] = LearningService,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM; `reuse_port` lets several serving processes share the port."""
    web.run_app(
        create_app(config, config_path, kind),
        host=config.server.host,
        port=config.server.port,
        access_log=None,
        print=lambda *_: None,
        reuse_port=reuse_port,
        handle_signals=True,
    )
