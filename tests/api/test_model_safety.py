"""A corrupt or NaN-weight checkpoint is refused at load, loudly, and the previous good one is used."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import structlog
import vowpal_wabbit_next as vw

from banditroute.config import Config
from banditroute.policy import vw_args
from tests.conftest import Api, make_config, start_api, stop_api

PROBE = {"query": "probe: sort a list in python", "metadata": {"task": "code"}}


async def learn_some(api: Api, n: int, offset: int = 0) -> None:
    for i in range(n):
        _, d = await api.post("/route", {"query": f"question {(i + offset) % 5} about code"})
        await api.post(
            "/reward",
            {"event_id": d["event_id"], "quality": (i % 3) / 2, "cost_usd": 0.001, "reward_token": d["reward_token"]},
        )


async def two_checkpoints(config: Config) -> dict:
    """Learn, checkpoint, learn, checkpoint, learn; returns the probe's pmf at the end."""
    api = await start_api(config)
    try:
        for round_ in range(2):
            await learn_some(api, 30, offset=round_)
            await api.service.checkpoint()
        await learn_some(api, 10, offset=7)
        _, probe = await api.post("/route", PROBE)
        return probe["pmf"]
    finally:
        await stop_api(api)  # writes a third checkpoint: the newest, which the test then poisons


def poison_newest(db_path: Path, vw_args: list[str], how: str) -> int:
    """Replace the newest checkpoint's model; returns the learned_seq of the one before it."""
    db = sqlite3.connect(db_path)
    rows = db.execute("SELECT seq, learned_seq, model FROM checkpoints ORDER BY seq DESC").fetchall()
    newest_seq, _, model = rows[0]
    if how == "nan":
        ws = vw.Workspace(vw_args, model_data=bytes(model))
        ws.weights()[:8] = np.nan
        model = ws.serialize()
        db.execute(
            "UPDATE checkpoints SET model = ?, sha256 = ? WHERE seq = ?",
            (model, hashlib.sha256(model).hexdigest(), newest_seq),
        )  # a valid checksum over NaNs
    else:
        db.execute("UPDATE checkpoints SET model = ? WHERE seq = ?", (bytes(model)[:-7] + b"garbage", newest_seq))
    db.commit()
    db.close()
    return rows[1][1]


@pytest.mark.parametrize("how", ["nan", "corrupt"])
async def test_bad_checkpoint_falls_back_to_the_previous_good_one(tmp_path: Path, how: str) -> None:
    # The VW reward learner, whose checkpoint is VW's bytes alone: the test poisons them with VW.
    config = make_config(tmp_path, policy={"exploration": "squarecb"})
    before = await two_checkpoints(config)
    previous_seq = poison_newest(tmp_path / "var" / "banditroute.db", vw_args(config.policy), how)
    with structlog.testing.capture_logs() as logs:
        api = await start_api(config)
    try:
        refused = [e for e in logs if e["event"] == "checkpoint_refused"]
        assert len(refused) == 1
        assert ("NaN" if how == "nan" else "checksum") in refused[0]["reason"]
        started = next(e for e in logs if e["event"] == "recovered")
        assert started["checkpoint_seq"] == previous_seq and started["replayed"] > 0
        _, after = await api.post("/route", PROBE)
        assert after["pmf"] == pytest.approx(before, abs=1e-6)  # previous checkpoint + replay: same policy
    finally:
        await stop_api(api)


async def test_a_nan_policy_is_never_checkpointed(api: Api) -> None:
    await learn_some(api, 5)
    api.service.router.policy._ws.weights()[:4] = np.inf
    with structlog.testing.capture_logs() as logs:
        await api.service.checkpoint()
    assert [e["event"] for e in logs] == ["checkpoint_skipped"]
    assert await api.service.eventlog.call(api.service.store.checkpoints) == []
