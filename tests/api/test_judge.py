"""The LLM-as-judge worker: score parsing, the bounded sample table, and end to end through the proxy
with the fake upstream (tests/fake_upstream.py) answering both as the routed models and as the judge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from banditroute.store.sqlite import Store
from banditroute.types import JudgeSample
from feedback.judge import JudgeWorker, parse_score
from tests.api.test_proxy import proxy_config, sdk
from tests.conftest import Api, start_api, stop_api
from tests.support.fake_upstream import Behaviour, FakeUpstream

SCORES = [
    ('{"score": 8, "reason": "good"}', 7 / 9),
    ('Here you go: {"reason": "meh", "score": 5.5}', 4.5 / 9),
    ("Score: 10. Excellent answer.", 1.0),
    ("score = 1", 0.0),
    ("7", 6 / 9),
    (" 4/10 ", 3 / 9),
    ('{"score": 11}', None),  # off the scale
    ('{"score": "high"}', None),
    ("I would rather not say.", None),
    ("", None),
    ("{not json} and no score", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "quality"), SCORES)
def test_parse_score_is_robust(text: Any, quality: float | None) -> None:
    got = parse_score(text, 1.0, 10.0)
    assert got == (pytest.approx(quality) if quality is not None else None)


def sample(event_id: str, ts: float) -> JudgeSample:
    return JudgeSample(event_id, ts, "a", '[{"role": "user", "content": "hi"}]', "hello")


def test_samples_are_bounded_in_rows_and_age(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    try:
        for i in range(10):
            store.put_sample(sample(f"e{i}", 100.0 + i), keep_after=0.0, max_samples=4)
        assert [s.event_id for s in store.samples()] == ["e6", "e7", "e8", "e9"]
        store.put_sample(sample("e10", 110.0), keep_after=108.5, max_samples=4)
        assert [s.event_id for s in store.samples()] == ["e9", "e10"]
        assert [s.event_id for s in store.due_samples(not_after=109.0, limit=10)] == ["e9"]
    finally:
        store.close()


# -- end to end ---------------------------------------------------------------------------------

JUDGE = "judge-model"


def judge_config(tmp_path: Path, upstream: FakeUpstream, **judge: Any) -> Any:
    settings = {
        "endpoint": upstream.base_url,
        "model": JUDGE,
        "sample_rate": 1.0,
        "backoff_s": 0.01,
        "rate_limit_per_s": 1000.0,
        "input_price": 1.0,
        "output_price": 2.0,
        **judge,
    }
    return proxy_config(tmp_path, upstream.base_url, judge=settings)


async def ask(api: Api, n: int) -> list[str]:
    """n completions through the proxy with the openai SDK; their event ids."""
    ids = []
    async with sdk(api) as (_, client):
        for i in range(n):
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": f"question number {i}"}]
            )
            ids.append(raw.headers["x-banditroute-event-id"])
    for _ in range(200):  # the proxy keeps a sample just after it has answered
        kept = {s.event_id for s in await api.service.eventlog.call(api.service.store.samples)}
        if kept >= set(ids):
            return ids
        await asyncio.sleep(0.02)
    raise AssertionError("the proxy did not keep the samples")


async def run_judge(api: Api, config: Any) -> JudgeWorker:
    worker = JudgeWorker(config, service_url=str(api.server.make_url("")))
    await worker.start()
    try:
        await worker.run_once()
    finally:
        await worker.close()
    return worker


async def stored(api: Api, fn: str, *args: Any) -> Any:
    await asyncio.sleep(0.05)  # let the service's write queue commit
    return await api.service.eventlog.call(getattr(api.service.store, fn), *args)


async def test_judge_scores_sampled_events_and_the_reward_is_learned(tmp_path: Path, upstream: FakeUpstream) -> None:
    seen: list[dict] = []

    def grade(body: dict) -> str:
        seen.append(body)
        return '{"score": 8, "reason": "correct"}'

    upstream.behaviours[JUDGE] = Behaviour(reply=grade)
    config = judge_config(tmp_path, upstream)
    api = await start_api(config)
    try:
        ids = await ask(api, 3)
        assert [s.event_id for s in await stored(api, "samples")] == ids  # sample_rate 1: all kept
        worker = await run_judge(api, config)
        assert worker.counts["judged"] == 3
        system, user = seen[0]["messages"]
        assert system["content"] == config.judge.rubric and "The answer is 42." in user["content"]
        learned = {row.event_id: row for row, _ in await stored(api, "learned_after", 0)}
        for eid in ids:
            [part] = [p for p in await stored(api, "feedback", eid) if p.source == "judge"]
            assert part.quality == pytest.approx(7 / 9)
            assert learned[eid].quality == pytest.approx(7 / 9) and learned[eid].vw_cost is not None
        # the judge's spend, from the usage the fake judge reported x the configured judge prices
        samples = await stored(api, "samples")
        assert all(s.status == "judged" and s.attempts == 1 for s in samples)
        spent = sum(s.cost_usd for s in samples)
        assert spent > 0 and await stored(api, "judge_spend") == pytest.approx(spent)
    finally:
        await stop_api(api)


async def test_malformed_and_failing_judge_answers_are_retried_or_skipped(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    answers = iter(
        [
            "no idea",
            '{"score": 3}',  # first sample: malformed, then good
            "hmm",
            "???",
            "nope",
        ]
    )  # second sample: malformed every time -> failed

    upstream.behaviours[JUDGE] = Behaviour(reply=lambda body: next(answers))
    config = judge_config(tmp_path, upstream, max_retries=2, concurrency=1)
    api = await start_api(config)
    try:
        first, second = await ask(api, 2)
        await run_judge(api, config)
        by_id = {s.event_id: s for s in await stored(api, "samples")}
        assert (by_id[first].status, by_id[first].attempts, by_id[first].quality) == ("judged", 2, pytest.approx(2 / 9))
        assert (by_id[second].status, by_id[second].attempts) == ("failed", 3)
        assert "malformed" in by_id[second].note
        assert not [p for p in await stored(api, "feedback", second) if p.source == "judge"]
        # an upstream error (HTTP 500) is retried with backoff too
        upstream.behaviours[JUDGE] = Behaviour(status=500)
        [third] = await ask(api, 1)
        await run_judge(api, config)
        assert {s.event_id: s for s in await stored(api, "samples")}[third].status == "failed"
    finally:
        await stop_api(api)


async def test_user_quality_wins_and_the_spend_is_capped(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.behaviours[JUDGE] = Behaviour(reply='{"score": 2}')
    # each judge call costs (prompt words + 2) tokens at $1M/1M tokens: about $20; the cap allows one call
    config = judge_config(tmp_path, upstream, input_price=1e6, output_price=1e6, max_spend_usd=1.0, concurrency=1)
    api = await start_api(config)
    try:
        rated, *others = await ask(api, 3)
        status, answer = await api.post("/reward", {"event_id": rated, "quality": 0.9, "source": "user"})
        assert (status, answer["status"]) == (202, "learned")
        worker = await run_judge(api, config)
        by_id = {s.event_id: s for s in await stored(api, "samples")}
        assert by_id[rated].status == "skipped"  # a user already rated it: no judge call spent on it
        assert [by_id[e].status for e in others] == ["judged", "new"]  # the cap stopped the judge
        assert worker.over_budget and await stored(api, "judge_spend") >= 1.0
        # a later run does nothing while over the cap: the spend is persistent
        assert (await run_judge(api, config)).counts["judged"] == 0
    finally:
        await stop_api(api)
