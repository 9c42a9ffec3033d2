"""`tune --log` retrains a policy from the service's log: its VW costs must be scaled by the same
reward span as the Router's under the same config (it once used an empty catalog's span, 1.0)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from banditroute import reward
from banditroute.cli import main
from banditroute.config import RewardConfig, load_config
from banditroute.router import Router
from banditroute.types import ModelSpec
from tests.support import FIXTURES


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every reward span computed from here on (the Router and the retraining both ask `reward`)."""
    seen: list[float] = []
    compute = reward.reward_span

    def recording(specs: Iterable[ModelSpec], config: RewardConfig, *args: int) -> float:
        seen.append(compute(specs, config, *args))
        return seen[-1]

    monkeypatch.setattr(reward, "reward_span", recording)
    return seen


def test_tune_log_retrains_with_the_routers_reward_span(tmp_path: Path, spans: list[float], capsys) -> None:
    log = tmp_path / "banditroute.db"
    dataset = str(FIXTURES / "data" / "routerbench")
    assert main(["simulate", "--dataset", dataset, "--limit", "60", "--cost-weight", "1", "--save-log", str(log)]) == 0
    spans.clear()
    Router(load_config().with_overrides(reward={"cost_weight": 1.0}))
    (router_span,) = spans
    spans.clear()
    assert main(["tune", "--log", str(log), "--weights", "1", "--target-quality", "0"]) == 0
    assert spans == [router_span]
    assert router_span > 1.0  # the bundled catalog's prices widen the span; an empty catalog gives 1.0
