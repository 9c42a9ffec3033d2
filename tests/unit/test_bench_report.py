"""`make bench`'s bookkeeping: a phase with refusals fails, and the headline ratios come from the phases."""

from __future__ import annotations

import pytest

from tools.bench import peers
from tools.bench.harness import HEADLINE_RATE, BenchFailed, expect_2xx, ratio_keys


def _latency(p99: float, p999: float) -> dict[str, float]:
    return {"p50_ms": p99 / 4, "p90_ms": p99 / 2, "p99_ms": p99, "p999_ms": p999}


@pytest.mark.parametrize(
    ("result", "keys", "fails"),
    [
        ({"errors": 0, "sent": 10}, ("errors",), False),
        ({"errors": 3, "sent": 10}, ("errors",), True),
        ({"non_2xx": 0, "socket_errors": 0}, ("non_2xx", "socket_errors"), False),
        ({"non_2xx": 87_765, "socket_errors": 0}, ("non_2xx", "socket_errors"), True),
        ({"non_2xx": 0, "socket_errors": 2}, ("non_2xx", "socket_errors"), True),
    ],
)
def test_a_phase_with_unexpected_answers_fails(result, keys, fails) -> None:
    if fails:
        with pytest.raises(BenchFailed, match="unexpected answers"):
            expect_2xx("a phase", result, *keys)
    else:
        assert expect_2xx("a phase", result, *keys) is result


def test_the_ratios_are_route_over_the_floor_of_the_same_server() -> None:
    rate = HEADLINE_RATE
    http = {
        "single": {f"route_{rate}": _latency(1.5, 4.0), f"floor_{rate}": _latency(0.5, 1.0)},
        "workers_2": {f"route_{rate}": _latency(2.0, 3.0), f"floor_{rate}": _latency(1.0, 2.0)},
        "durability": {
            "power": {
                f"route_{rate}": _latency(4.0, 10.0),
                f"floor_{rate}": _latency(0.8, 2.0),
                "loop_probe": {"over_2ms_during_fsync": 7},
            },
            "process": {
                f"route_{rate}": _latency(9.0, 9.0),
                f"floor_{rate}": _latency(1.0, 1.0),
                "loop_probe": {"over_2ms_during_fsync": 0},
            },
        },
    }
    assert ratio_keys(http) == {
        "route_floor_p99_ratio": 3.0,
        "route_floor_p999_ratio": 4.0,
        "route_floor_p99_ratio_workers_2": 2.0,
        "route_floor_p999_ratio_workers_2": 1.5,
        "route_floor_p99_ratio_power": 5.0,
        "route_floor_p999_ratio_power": 5.0,
        "loop_callbacks_over_2ms_during_fsync_power": 7,
        "loop_callbacks_over_2ms_during_fsync_process": 0,
    }


def test_the_peer_ratios_are_litellm_over_the_decision() -> None:
    litellm = {s: {"completion": {"p50_us": 3000.0, "p99_us": 4000.0}} for s in peers.STRATEGIES}
    assert peers.ratios(litellm, {"p50_us": 60.0, "p99_us": 200.0}) == {
        "litellm_simple_shuffle_p50_ratio": 50.0,
        "litellm_simple_shuffle_p99_ratio": 20.0,
        "litellm_latency_based_routing_p50_ratio": 50.0,
        "litellm_latency_based_routing_p99_ratio": 20.0,
    }
    assert peers.ratios({"skipped": "not installed"}, {"p50_us": 60.0, "p99_us": 200.0}) == {}
