"""Peers in the same `make bench` run: LiteLLM's `Router` in process, against banditroute's decision.

LiteLLM is a benchmark-only dependency (the `bench` extra, which `make bench` installs); without it
this section reports itself skipped. Its router gets 5 deployments of one model group with mocked
responses (`mock_response`: no network), and each strategy is timed per `Router.completion` call,
what an application calls and waits for (the deployment's choice, LiteLLM's request and response
handling, its callbacks), and per `get_available_deployment`, the choice alone. banditroute's
figure is the harness's `decision_8`: featurize, rules, predict, sample and log enqueue with the
bundled 8 models. A ratio is LiteLLM's time over banditroute's, at p50 and at p99.
"""

from __future__ import annotations

import os
from typing import Any

from tools.bench.stats import timings_us

STRATEGIES = ("simple-shuffle", "latency-based-routing")
DEPLOYMENTS = 5
WARMUP_CALLS = 200


def bench_litellm_router(prompts: list[str], iterations: int) -> dict[str, Any]:
    # The bundled price map, not one fetched at import (this machine has no route to it).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
        from litellm import Router
    except ImportError:
        return {"skipped": "litellm is not installed: pip install -e '.[bench]' (make bench does)"}
    litellm.suppress_debug_info = True
    model_list = [
        {
            "model_name": "auto",
            "litellm_params": {"model": f"openai/deployment-{i}", "api_key": "sk-bench", "mock_response": "ok"},
        }
        for i in range(DEPLOYMENTS)
    ]
    out: dict[str, Any] = {"version": _version(), "deployments": DEPLOYMENTS, "iterations": iterations}
    for strategy in STRATEGIES:
        router = Router(model_list=model_list, routing_strategy=strategy)
        messages = [[{"role": "user", "content": q}] for q in prompts[:1000]]
        for i in range(WARMUP_CALLS):  # latency-based routing needs some measured calls to choose from
            router.completion(model="auto", messages=messages[i % len(messages)])
        out[strategy] = {
            "completion": timings_us(
                lambda i: router.completion(model="auto", messages=messages[i % len(messages)]), iterations
            ),
            "choice": timings_us(
                lambda i: router.get_available_deployment(model="auto", messages=messages[i % len(messages)]),
                iterations,
            ),
        }
    return out


def ratios(litellm: dict[str, Any], decision: dict[str, float]) -> dict[str, float]:
    """LiteLLM's time over banditroute's decision's, per strategy, for the completion call, p50 and p99."""
    if "skipped" in litellm:
        return {}
    out = {}
    for strategy in STRATEGIES:
        name = strategy.replace("-", "_")
        for p in ("p50", "p99"):
            out[f"litellm_{name}_{p}_ratio"] = round(
                litellm[strategy]["completion"][f"{p}_us"] / decision[f"{p}_us"], 1
            )
    return out


def _version() -> str:
    from importlib.metadata import version

    return version("litellm")
