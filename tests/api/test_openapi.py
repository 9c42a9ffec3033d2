"""GET /openapi.json: a valid OpenAPI 3.1 document that describes exactly what the server serves.

Real responses of a real server (every path, the success answers and the error answers) are
validated against the schema the document gives for their path, method, status and media type.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from openapi_spec_validator import validate

from banditroute.http.app import create_app
from banditroute.types import ModelSpec
from tests.conftest import Api, make_config, start_api, stop_api
from tests.support.fake_upstream import FakeUpstream

KEY = "openapi-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Checker:
    """Validates answers against the served document and records which answers were seen."""

    def __init__(self, api: Api, doc: dict[str, Any]):
        self.api, self.doc, self.seen = api, doc, set()

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        expect: int | None = None,
    ) -> Any:
        status, resp_headers, body = await self.api.raw(method, path, json=json, data=data, headers=headers)
        if expect is not None:
            assert status == expect, body[:300]
        responses = self.doc["paths"][path][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {path} answered {status}, which the document does not list"
        media = resp_headers["Content-Type"].split(";")[0]
        content = responses[str(status)]["content"]
        assert media in content, f"{method} {path} {status} answered {media}; documented: {list(content)}"
        self.seen.add((path, method.lower(), str(status)))
        if media != "application/json":
            return body.decode()
        payload = orjson.loads(body)
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            **content[media]["schema"],
        }
        jsonschema.validate(payload, schema, cls=jsonschema.Draft202012Validator)
        return payload


async def test_the_document_is_valid_openapi_31_and_lists_exactly_the_served_routes(api: Api) -> None:
    status, doc = await api.get("/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    validate(doc)
    app = create_app(make_config(Path("/nonexistent")))  # routes only; never started
    served = {(r.resource.canonical, r.method.lower()) for r in app.router.routes() if r.method != "HEAD"}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented


async def test_real_responses_match_the_document(tmp_path: Path) -> None:
    config = make_config(tmp_path, admin={"key_sha256": hashlib.sha256(KEY.encode()).hexdigest()})
    api = await start_api(config)
    try:
        _, doc = await api.get("/openapi.json")
        check = Checker(api, doc)
        d = await check(
            "POST",
            "/route",
            json={
                "query": "Write a haiku about routers",
                "metadata": {"user_tier": "pro", "capabilities": ["tools"]},
                "max_output_tokens": 100,
            },
            expect=200,
        )
        await check("POST", "/route", json={"query": 1}, expect=400)
        await check("POST", "/route", json={"query": "x", "metadata": {"capabilities": ["time-travel"]}}, expect=422)
        await check("POST", "/route", data=b'{"query": "' + b"x" * 9_000_000 + b'"}', expect=413)
        await check(
            "POST", "/reward", json={"event_id": d["event_id"], "latency_ms": 300, "source": "system"}, expect=202
        )
        await check("POST", "/reward", json={"event_id": d["event_id"], "quality": 1, "output_tokens": 20}, expect=202)
        await check("POST", "/reward", json={"event_id": d["event_id"], "quality": 1}, expect=202)  # late
        await check("POST", "/reward", json={"event_id": "f" * 32, "quality": 1}, expect=404)
        await check("POST", "/reward", json={"event_id": d["event_id"]}, expect=400)
        assert await check("POST", "/noop", json={"query": "the floor reads a body"}, expect=200) == {}
        for path in ("/healthz", "/models", "/stats", "/dashboard/data", "/openapi.json"):
            await check("GET", path, expect=200)
        assert "banditroute_decisions_total" in await check("GET", "/metrics", expect=200)
        assert "<svg" in await check("GET", "/dashboard", expect=200)
        assert "openapi.json" in await check("GET", "/docs", expect=200)
        index = await check("GET", "/", expect=200)
        assert index["links"]["docs"] == "/docs" and index["links"]["dashboard"] == "/dashboard"
        page = await check("GET", "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, expect=200)
        assert '<a href="/dashboard">' in page and '<a href="/openapi.json">' in page

        await check("GET", "/admin/settings", expect=401)
        await check("GET", "/admin/settings", headers={"Authorization": "Bearer nope"}, expect=401)
        await check("GET", "/admin/settings", headers=AUTH, expect=200)
        await check("POST", "/admin/weights", json={"cost_weight": 0.2}, headers=AUTH, expect=200)
        await check("POST", "/admin/weights", json={"cost_weight": -2}, headers=AUTH, expect=400)
        await check("POST", "/admin/exploration", json={"paused": True}, headers=AUTH, expect=200)
        await check("POST", "/admin/exploration", json={"paused": "yes"}, headers=AUTH, expect=400)
        await check("POST", "/admin/exploration", json={"paused": False}, headers=AUTH, expect=200)
        await check("POST", "/admin/shadow", json={"baseline": "gpt-4.1-nano"}, headers=AUTH, expect=200)
        await check("POST", "/admin/shadow", json={"baseline": "nope"}, headers=AUTH, expect=400)
        s = await check("POST", "/route", json={"query": "shadowed"}, expect=200)
        await check("POST", "/reward", json={"event_id": s["event_id"], "quality": 0.7, "cost_usd": 0.0001}, expect=202)
        summary = await check("GET", "/admin/shadow", headers=AUTH, expect=200)
        assert summary["bandit_ips"] is not None
        await check("GET", "/dashboard/data", expect=200)  # with shadow data and changes
        reloaded = await check("POST", "/admin/reload", headers=AUTH, expect=200)
        assert reloaded["added"] == [] and reloaded["removed"] == []
        await check("POST", "/admin/snapshot", headers=AUTH, expect=200)
        policy = await check("GET", "/admin/policy", headers=AUTH, expect=200)
        await check("POST", "/admin/policy", json=policy, headers=AUTH, expect=200)
        await check("POST", "/admin/policy", json={**policy, "sha256": "0" * 64}, headers=AUTH, expect=400)
        await check("POST", "/admin/policy", json={**policy, "vw_args": ["--cb_explore_adf"]}, headers=AUTH, expect=409)

        seen = check.seen | await proxy_answers(doc, tmp_path)
        success = {
            (p, m, s)
            for p, ops in doc["paths"].items()
            for m, op in ops.items()
            for s in op["responses"]
            if s.startswith("2")
        }
        assert success - seen == set(), "every documented success answer is exercised"
    finally:
        await stop_api(api)


async def proxy_answers(doc: dict[str, Any], tmp_path: Path) -> set[tuple[str, str, str]]:
    """The proxy's answers, with a real local upstream behind it."""
    upstream = FakeUpstream()
    await upstream.start()
    config = make_config(tmp_path / "proxy")
    config = dataclasses.replace(
        config,
        models=tuple(
            ModelSpec(n, 1.0, 2.0, 100_000, base_url=upstream.base_url, upstream_model=f"up-{n}") for n in ("a", "b")
        ),
    )
    api = await start_api(config)
    try:
        check = Checker(api, doc)
        messages = [{"role": "user", "content": "What is 6 x 7?"}]
        answer = await check("POST", "/v1/chat/completions", json={"model": "auto", "messages": messages}, expect=200)
        assert answer["choices"][0]["message"]["content"]
        streamed = await check(
            "POST", "/v1/chat/completions", json={"model": "auto", "messages": messages, "stream": True}, expect=200
        )
        assert "data:" in streamed
        await check("POST", "/v1/chat/completions", json={"model": "auto", "messages": []}, expect=400)
        await check("POST", "/v1/chat/completions", json={"model": "nope", "messages": messages}, expect=404)
        await check("GET", "/v1/models", expect=200)
        return check.seen
    finally:
        await stop_api(api)
        await upstream.close()


@pytest.mark.parametrize("path", ["/route", "/reward"])
async def test_the_request_schemas_reject_what_the_server_rejects(api: Api, path: str) -> None:
    _, doc = await api.get("/openapi.json")
    body_schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = {"components": doc["components"], **body_schema}
    validator = jsonschema.Draft202012Validator(schema)
    bad = {
        "/route": [{"query": "hi", "surprise": 1}, {"query": 3}, {"query": "hi", "max_output_tokens": 0}],
        "/reward": [
            {"quality": 1},
            {"event_id": "a b", "quality": 1},
            {"event_id": "e", "quality": 2},
            {"event_id": "e", "source": "oracle"},
        ],
    }[path]
    for body in bad:
        assert not validator.is_valid(body)
        status, _ = await api.post(path, body)
        assert status == 400
