"""`banditroute stats | export-log | replay-log` as a user runs them: real processes, a real log file."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sys
from pathlib import Path

import orjson
import pytest

from banditroute.config import Config
from banditroute.retrain import retrain
from banditroute.snapshot import loads
from banditroute.store.datadir import secret_path
from banditroute.types import Decision, LearnedRow
from tests.conftest import Api, make_config, start_api, stop_api

KEY = "cli-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBES = ["Write a Python function that sorts a list", "What is the capital of Peru?", "Prove Fermat's little theorem"]


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "banditroute.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def traffic(api: Api, n: int) -> None:
    """Requests with feedback that favours cheap models, some left to expire, one late part."""
    for i in range(n):
        _, d = await api.post("/route", {"query": f"{PROBES[i % 3]} (variant {i})"})
        if i % 5 == 4:
            continue  # no feedback: finished at expiry with defaults
        quality = 0.9 if d["model"] in ("gpt-4.1-nano", "gpt-4o-mini", "codestral") else 0.6
        await api.post(
            "/reward",
            {
                "event_id": d["event_id"],
                "quality": quality,
                "input_tokens": 200,
                "output_tokens": 400,
                "latency_ms": 900,
                "source": "judge",
            },
        )
        if i == 0:
            await api.post("/reward", {"event_id": d["event_id"], "quality": 0.0})  # late: not learned


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    # No cold-start floor: it depends on reward counts kept outside the policy, and the replay
    # test compares the policies themselves.
    return make_config(
        tmp_path,
        reward={"reward_wait_s": 0.2},
        rules={"cold_start_share": 0.0},
        admin={"key_sha256": hashlib.sha256(KEY.encode()).hexdigest()},
    )


async def test_stats_of_a_running_server_and_of_a_log(cfg: Config) -> None:
    api = await start_api(cfg)
    try:
        await traffic(api, 10)
        code, out, _ = await cli("stats", "--url", str(api.server.make_url("/")))
        assert code == 0
        _, live = await api.get("/stats")
        printed = orjson.loads(out)
        assert printed["decisions"] == live["decisions"] == 10
        assert printed["feedback_parts"] == live["feedback_parts"]
    finally:
        await stop_api(api)
    db = str(Path(cfg.server.data_dir) / "banditroute.db")
    code, out, _ = await cli("stats", "--db", db)
    assert code == 0 and orjson.loads(out)["decisions"] == 10
    code, _, err = await cli("stats", "--db", db + ".missing")
    assert code == 2 and "no log at" in err
    code, _, err = await cli("stats", "--url", "http://127.0.0.1:9/", "--timeout", "2")
    assert code == 2 and "cannot read" in err


async def test_export_log_writes_every_decision_with_its_feedback_and_learned_reward(
    cfg: Config, tmp_path: Path
) -> None:
    api = await start_api(cfg)
    try:
        await traffic(api, 15)
        await asyncio.sleep(0.5)  # the unanswered ones expire
    finally:
        await stop_api(api)
    out = tmp_path / "log.jsonl"
    code, _, err = await cli("export-log", "--db", str(Path(cfg.server.data_dir) / "banditroute.db"), "--out", str(out))
    assert code == 0 and "exported 15 decisions" in err
    rows = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 15 and len({r["event_id"] for r in rows}) == 15
    for i, row in enumerate(rows):
        assert row["pmf"][row["chosen"]] == row["probability"] and row["models"][row["chosen"]] == row["model"]
        assert row["learned"] is not None and row["learned"]["event_id"] == row["event_id"]
        if i % 5 == 4:
            assert row["feedback"] == [] and row["learned"]["defaulted"].startswith("quality")
        else:
            assert row["feedback"][0]["quality"] in (0.9, 0.6)
    assert [p["quality"] for p in rows[0]["feedback"]] == [rows[0]["feedback"][0]["quality"], 0.0]  # late kept


async def test_replay_log_reproduces_the_live_policy_and_retrains_under_a_new_weight(
    cfg: Config, tmp_path: Path
) -> None:
    api = await start_api(cfg)
    try:
        await traffic(api, 40)
        await asyncio.sleep(0.5)
        live = [(await api.post("/route", {"query": q}))[1]["pmf"] for q in PROBES]
    finally:
        await stop_api(api)
    db = str(Path(cfg.server.data_dir) / "banditroute.db")
    same, heavier = tmp_path / "same.json", tmp_path / "heavier.json"
    code, out, err = await cli("replay-log", "--db", db, "--out", str(same))
    assert code == 0, err
    assert orjson.loads(out)["learned"] == 32  # the 8 left to expire have no quality (default_quality unset)
    code, _, err = await cli("replay-log", "--db", db, "--cost-weight", "5", "--out", str(heavier))
    assert code == 0, err
    assert loads(heavier.read_bytes()).cost_weight == 5.0

    # A policy's word weights are keyed to its data directory's secret: the fresh one shares it.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy2(secret_path(cfg.server.data_dir), secret_path(fresh))
    api = await start_api(cfg.with_overrides(server={"data_dir": str(fresh)}))
    try:
        # The same log, the same order: the same policy. The decomposed learner learns quality, cost and
        # latency apart from the weights, so the one retrained under another weight predicts the same pmf
        # at this service's weights (the weights act at decision time).
        for path in (same, heavier):
            status, _, body = await api.raw("POST", "/admin/policy", data=path.read_bytes(), headers=AUTH)
            assert status == 200, body
            replayed = [(await api.post("/route", {"query": q}))[1]["pmf"] for q in PROBES]
            assert replayed == [pytest.approx(p) for p in live]
    finally:
        await stop_api(api)


def test_retrain_skips_models_no_longer_in_the_catalog(cfg: Config) -> None:
    d = Decision("e1", 1.0, "|w a", ("gone-model",), 0, (1.0,), False, "r")
    row = LearnedRow(1, "e1", 2.0, 0.5, 0.5, 0.0, 0.0, 0.5, "", 0.1, 0.0)
    result = retrain(cfg, [(d, row, [])], 0.1, 0.0)
    assert (result.learned, result.unknown_model, result.last_seq) == (0, 1, 1)
