"""LLM-as-judge worker (`banditroute judge`, `make judge`): quality for sampled proxy events.

The proxy keeps the conversation and answer of a fraction `judge.sample_rate` of its completed
events in the `judge_samples` table (bounded by `judge.max_samples` and `judge.retention_s`; no
other event's text is stored). This worker reads the samples that are at least `judge.delay_s`
old, asks a judge model (any OpenAI-compatible endpoint) to grade the answer with
`judge.rubric`, turns the score into a quality and posts it to the service's `/reward` with
`source: "judge"`, where it is stored and joined like any other feedback.

- A sample whose event was already learned, or that a user already rated, is skipped: the
  verdict would change nothing (a user's quality outranks a judge's; see the joiner).
- Malformed judge output (no score in the scale) is retried, then the sample is marked failed;
  nothing the judge says can crash the worker.
- Failed calls (connection errors, timeouts, 429, 5xx) are retried with exponential backoff
  (`judge.backoff_s`, doubling) up to `judge.max_retries` times.
- At most `judge.concurrency` calls at once and `judge.rate_limit_per_s` started per second.
- Spend: each call's `usage` (or characters / 4 when absent) x `judge.input_price` /
  `judge.output_price`; the running total is stored, and at `judge.max_spend_usd` the worker stops
  judging.

Score to quality: `(score - score_min) / (score_max - score_min)`, so with the default 1..10
rubric a 10 is quality 1.0, a 1 is 0.0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from banditroute.api.chat import message_text, tokens_used
from banditroute.auth import reward_token
from banditroute.config import Config, ConfigError, JudgeConfig, config_path, load_config, with_environment
from banditroute.http.upstream import Timeouts, Upstream, UpstreamError
from banditroute.store.base import LogStore, open_store, reward_secret
from banditroute.types import JudgeSample

log = structlog.get_logger("banditroute.judge")

_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_SCORE_WORD = re.compile(r"score\W{0,5}(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?\s*\.?\s*")
_RETRY_STATUS = 429
_SERVER_ERROR = 500
_MAX_JUDGE_ANSWER_BYTES = 1_000_000
# The API key (scope `reward`) the worker sends to the service when the service requires keys.
JUDGE_KEY_ENV = "BANDITROUTE_JUDGE_KEY"


def parse_score(text: Any, score_min: float, score_max: float) -> float | None:
    """The quality in [0, 1] a judge's answer gives, or None when it holds no score on the scale.

    Accepted, in this order: a JSON object with a numeric "score"; "score: N" in prose; the answer
    being just a number (optionally "N/10").
    """
    if not isinstance(text, str):
        return None
    score = None
    for match in _JSON_OBJECT.finditer(text):
        try:
            obj = orjson.loads(match.group(0))
        except orjson.JSONDecodeError:
            continue
        value = obj.get("score") if isinstance(obj, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            score = float(value)
            break
    if score is None and (m := _SCORE_WORD.search(text)):
        score = float(m.group(1))
    if score is None and (m := _BARE_NUMBER.fullmatch(text)):
        score = float(m.group(1))
    if score is None or not score_min <= score <= score_max:
        return None
    return (score - score_min) / (score_max - score_min)


def judge_messages(sample: JudgeSample, rubric: str) -> list[dict[str, str]]:
    """The rubric as the system message; the conversation and the answer to grade as the user's."""
    try:
        messages = orjson.loads(sample.prompt)
    except orjson.JSONDecodeError:
        messages = [{"role": "user", "content": sample.prompt}]  # cut at max_sample_chars
    if not isinstance(messages, list):
        messages = []
    lines = [f"{m.get('role', '?')}: {message_text(m.get('content'))}" for m in messages if isinstance(m, dict)]
    conversation = "\n".join(lines) or sample.prompt
    return [
        {"role": "system", "content": rubric},
        {
            "role": "user",
            "content": f"Conversation:\n{conversation}\n\nThe assistant's answer to grade:\n{sample.response}",
        },
    ]


class Pacer:
    """Starts at most `rate` calls per second, evenly spaced."""

    def __init__(self, rate: float, clock: Any = time.monotonic):
        self.interval = 1.0 / rate
        self.clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = self.clock()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self.interval


@dataclass(slots=True)
class Grade:
    quality: float | None
    spent_usd: float
    attempts: int
    note: str


class JudgeWorker:
    def __init__(self, config: Config, *, service_url: str | None = None, clock: Any = time.time):
        self.config = config
        self.judge: JudgeConfig = config.judge
        self.service_url = (
            service_url or self.judge.service_url or f"http://{config.server.host}:{config.server.port}"
        ).rstrip("/")
        self.clock = clock
        self.store: LogStore | None = None
        self.client = Upstream(
            Timeouts(config.proxy.connect_timeout_s, self.judge.timeout_s, self.judge.concurrency * 2)
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="banditroute-judge-store")
        self._limiter = Pacer(self.judge.rate_limit_per_s)
        self._semaphore = asyncio.Semaphore(self.judge.concurrency)
        self.spent_usd = 0.0
        self.secret = b""
        self.counts = {"judged": 0, "skipped": 0, "failed": 0}

    async def start(self) -> None:
        if not self.judge.endpoint or not self.judge.model:
            raise ConfigError("judge.endpoint and judge.model must be set to run the judge")
        self.store = store = await self._db(open_store, self.config)  # the service's log, SQLite or PostgreSQL
        self.secret = await self._db(reward_secret, self.config, store, os.environ)  # the service's: tokens for /reward
        self.spent_usd = await self._db(self.store.judge_spend)
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()
        if self.store is not None:
            await self._db(self.store.close)
        self._executor.shutdown(wait=True)

    async def _db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def over_budget(self) -> bool:
        return self.spent_usd >= self.judge.max_spend_usd

    async def run_once(self) -> int:
        """Judge the samples due now; returns how many were finished (judged, skipped or failed)."""
        assert self.store is not None
        now = self.clock()
        await self._db(self.store.prune_samples, now - self.judge.retention_s, self.judge.max_samples)
        if self.over_budget:
            log.warning("judge_spend_cap_reached", spent_usd=self.spent_usd, cap=self.judge.max_spend_usd)
            return 0
        due = await self._db(self.store.due_samples, now - self.judge.delay_s, self.judge.concurrency * 4)
        done = await asyncio.gather(*(self._one(s) for s in due))
        return sum(done)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                finished = await self.run_once()
            except Exception as exc:  # a failed pass is retried at the next poll
                log.error("judge_pass_failed", error=str(exc))
                finished = 0
            if not finished:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.judge.poll_interval_s)

    async def _one(self, sample: JudgeSample) -> bool:
        assert self.store is not None
        async with self._semaphore:
            if self.over_budget:
                return False
            if await self._db(self.store.is_learned, sample.event_id) or await self._db(
                self.store.has_quality_from, sample.event_id, "user"
            ):
                return await self._finish(sample, "skipped", None, 0.0, 0, "already learned or rated by a user")
            verdict = await self._ask(sample)
            if verdict.quality is None:
                return await self._finish(sample, "failed", None, verdict.spent_usd, verdict.attempts, verdict.note)
            status, note = await self._post(sample.event_id, verdict.quality)
            return await self._finish(sample, status, verdict.quality, verdict.spent_usd, verdict.attempts, note)

    async def _ask(self, sample: JudgeSample) -> Grade:
        j = self.judge
        headers = {"authorization": f"Bearer {os.environ.get(j.api_key_env, '')}"} if j.api_key_env else {}
        messages = judge_messages(sample, j.rubric)
        body = {"model": j.model, "messages": messages, "temperature": 0, "max_tokens": j.max_output_tokens}
        prompt_chars = sum(len(m["content"]) for m in messages)
        spent, note = 0.0, ""
        for attempt in range(j.max_retries + 1):
            if attempt:
                await asyncio.sleep(j.backoff_s * 2 ** (attempt - 1))
            if self.over_budget:
                return Grade(None, spent, attempt, "spend cap reached")
            await self._limiter.wait()
            try:
                status, answer = await self.client.post_json(
                    j.endpoint.rstrip("/") + "/chat/completions", body, headers, j.timeout_s, _MAX_JUDGE_ANSWER_BYTES
                )
            except UpstreamError as exc:
                note = f"judge call failed: {exc.kind}"
                continue
            if status == _RETRY_STATUS or status >= _SERVER_ERROR:
                note = f"judge answered HTTP {status}"
                continue
            if status >= 300:
                return Grade(None, spent, attempt + 1, f"judge refused the request: HTTP {status}")
            text = _answer_text(answer)
            used = tokens_used(
                answer.get("usage") if isinstance(answer, dict) else None, (prompt_chars + 3) // 4, len(text or "")
            )
            cost = (used.input_tokens * j.input_price + used.output_tokens * j.output_price) / 1e6
            spent += cost
            self.spent_usd += cost
            quality = parse_score(text, j.score_min, j.score_max)
            if quality is not None:
                return Grade(quality, spent, attempt + 1, "")
            note = "malformed judge answer: " + repr((text or "")[:80])
        return Grade(None, spent, j.max_retries + 1, note)

    async def _post(self, event_id: str, quality: float) -> tuple[str, str]:
        """Post the quality to /reward; returns the sample's status and a note."""
        assert self.store is not None
        j = self.judge
        note = ""
        decision = await self._db(self.store.decision, event_id)
        body = {
            "event_id": event_id,
            "quality": quality,
            "source": "judge",
            "reward_token": reward_token(self.secret, event_id, decision.tenant if decision else None),
        }
        key = os.environ.get(JUDGE_KEY_ENV)
        headers = {"authorization": f"Bearer {key}"} if key else {}
        for attempt in range(j.max_retries + 1):
            if attempt:
                await asyncio.sleep(j.backoff_s * 2 ** (attempt - 1))
            try:
                status, answer = await self.client.post_json(
                    self.service_url + "/reward", body, headers, j.timeout_s, _MAX_JUDGE_ANSWER_BYTES
                )
            except UpstreamError as exc:
                note = f"posting the reward failed: {exc.kind}"
                continue
            if status == 202:
                return "judged", str(answer.get("status", "")) if isinstance(answer, dict) else ""
            note = f"/reward answered HTTP {status}"
            if status < _SERVER_ERROR:  # the service refused it; another try would not change that
                return "failed", note
        return "failed", note

    async def _finish(
        self, sample: JudgeSample, status: str, quality: float | None, spent: float, attempts: int, note: str
    ) -> bool:
        assert self.store is not None
        sample.status, sample.quality, sample.cost_usd = status, quality, spent
        sample.attempts, sample.note = attempts, note
        await self._db(self.store.finish_sample, sample, spent)
        self.counts[status] = self.counts.get(status, 0) + 1
        log.info(
            "judged",
            event_id=sample.event_id,
            status=status,
            quality=quality,
            attempts=attempts,
            spent_usd=round(spent, 8),
            note=note,
        )
        return True


def _answer_text(answer: Any) -> str | None:
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


async def serve(config: Config, service_url: str | None = None, *, once: bool = False) -> None:
    """Run the worker until interrupted (or for one pass with `once`)."""
    worker = JudgeWorker(config, service_url=service_url)
    await worker.start()
    try:
        if once:
            await worker.run_once()
        else:
            await worker.run(asyncio.Event())
    finally:
        await worker.close()


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from banditroute.telemetry import logs

    logs.configure(args.log_level)
    config = with_environment(load_config(config_path(args.config)))  # finds the server and log as serve does
    if args.data_dir is not None:
        config = config.with_overrides(server={"data_dir": args.data_dir})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, args.service_url, once=args.once))
    return 0


def register(sub: Any) -> None:
    """The `banditroute judge` command (an entry point of the `banditroute.commands` group)."""
    judge = sub.add_parser("judge", help="run the LLM-as-judge worker over the proxy's sampled events")
    judge.add_argument("--config", help="TOML config file with a [judge] section (default: the bundled one)")
    judge.add_argument(
        "--service-url",
        help="the banditroute service to post /reward to (default: judge.service_url, else server.host:port)",
    )
    judge.add_argument("--data-dir", help="where the service's SQLite log lives (default: server.data_dir)")
    judge.add_argument("--once", action="store_true", help="judge what is due now, then exit")
    judge.add_argument("--log-level", default="info")
    judge.set_defaults(func=_run)
