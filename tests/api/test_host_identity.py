"""Which host answered and whether it is the learner: `/stats` `host` and `learner`, `/metrics` the same."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import Api, make_config, start_api, stop_api


async def scrape(api: Api) -> str:
    status, _, body = await api.raw("GET", "/metrics")
    assert status == 200
    return body.decode()


async def test_the_single_process_is_its_own_learner_and_says_which_host_it_is(api: Api) -> None:
    _, stats = await api.get("/stats")
    assert stats["host"] == f"{socket.gethostname()}:{api.service.config.server.port}"
    assert stats["learner"] is True and stats["role"] == "single"
    assert f'banditroute_learner{{host="{stats["host"]}"}} 1.0' in await scrape(api)


async def test_a_named_host_reports_its_name(tmp_path: Path) -> None:
    api = await start_api(make_config(tmp_path, cluster={"host_name": "router-eu-1"}))
    try:
        _, stats = await api.get("/stats")
        assert stats["host"] == "router-eu-1"
        assert 'banditroute_learner{host="router-eu-1"} 1.0' in await scrape(api)
    finally:
        await stop_api(api)
