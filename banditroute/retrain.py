"""Working from the log without a server: export it for OPE tools, retrain a policy under other weights.

`export_rows` turns the store's joined log into plain JSON-ready dicts (one per decision);
`retrain` learns a fresh policy from the logged decisions and their feedback under a given
`cost_weight` / `latency_weight`, exactly as the router would have learned them: each join is
rebuilt from the feedback parts that had arrived when it was learned, resolved with the reward
formula under the new weights, and learned with the logged probability.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from banditroute import reward, trainer
from banditroute.config import Config
from banditroute.joiner import merge
from banditroute.policy import Policy
from banditroute.types import Decision, FeedbackPart, LearnedRow, Outcome

JoinedLog = Iterable[tuple[Decision, LearnedRow | None, list[FeedbackPart]]]


def export_row(decision: Decision, learned: LearnedRow | None, parts: list[FeedbackPart]) -> dict[str, Any]:
    shadow = None
    if decision.shadow_pmf is not None and decision.shadow_chosen is not None:
        shadow = {"pmf": list(decision.shadow_pmf), "pick": decision.models[decision.shadow_chosen]}
    return {
        "event_id": decision.event_id,
        "ts": decision.ts,
        "model": decision.model,
        "models": list(decision.models),
        "chosen": decision.chosen,
        "probability": decision.probability,
        "pmf": list(decision.pmf),
        "explored": decision.explored,
        "reason": decision.reason,
        "input_tokens": decision.input_tokens,
        "tenant": decision.tenant,
        "features": decision.features,
        "shadow": shadow,
        "feedback": [asdict(p) for p in parts],
        "learned": asdict(learned) if learned is not None else None,
    }


@dataclass(frozen=True, slots=True)
class RetrainResult:
    policy: Policy
    learned: int  # joins learned from
    skipped: int  # finished joins with nothing to learn (no quality and default_quality = skip)
    unknown_model: int  # decisions whose models are no longer in the catalog
    last_seq: int  # the newest learned.seq included


def retrain(config: Config, log: JoinedLog, cost_weight: float, latency_weight: float) -> RetrainResult:
    cfg = config.with_overrides(reward={"cost_weight": cost_weight, "latency_weight": latency_weight})
    known = {m.name: m for m in cfg.models}
    span = reward.reward_span(cfg.models, cfg.reward)
    policy = Policy(cfg.policy, cfg.models)
    finished = sorted(((row, d, parts) for d, row, parts in log if row is not None), key=lambda e: e[0].seq)
    learned = skipped = unknown = last_seq = 0
    for row, decision, parts in finished:
        last_seq = row.seq
        if not all(m in known for m in decision.models):
            unknown += 1
            continue
        if policy.decomposed:
            # Quality, cost and latency are learned apart and do not depend on the weights: the logged row
            # is learned as the live router learned it (only the budget's sums read the weights).
            w = cfg.reward.weights
            trainer.learn_row(
                policy, decision, replace(row, cost_weight=w.cost_weight, latency_weight=w.latency_weight), cfg
            )
            if row.vw_cost is None:
                skipped += 1
                continue
            learned += 1
            continue
        outcome = Outcome()
        for part in parts:
            if part.ts <= row.ts:  # parts that came after the join was learned were late
                merge(outcome, part, cfg.reward.quality_rule)
        r = reward.resolve(outcome, known[decision.model], decision.input_tokens, cfg.reward)
        if r is None:
            skipped += 1
            continue
        policy.learn(
            decision.features, decision.models, decision.chosen, decision.probability, reward.to_vw_cost(r.value, span)
        )
        learned += 1
    return RetrainResult(policy, learned, skipped, unknown, last_seq)
