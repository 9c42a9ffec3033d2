"""How a decision waits for its feedback: packed into a plain tuple (see `pack_pending`)."""

from __future__ import annotations

from array import array

from banditroute.types import Decision

PendingDecision = tuple  # Decision's fields in order, the pmfs as packed doubles, no exclusions or fallbacks


def pack_pending(d: Decision) -> PendingDecision:
    """How a decision waits for its feedback: what learning and its observers need, as a plain tuple.

    A million may wait. A tuple of strings, numbers and bytes is untracked by the cyclic GC after
    its first collection (a Decision object stays tracked, and full collections over a million of
    them paused the service for milliseconds to seconds); a pmf is packed doubles in bytes (8 bytes
    a probability instead of a 24-byte float object; bytes, unlike an array, are not GC-tracked);
    the caller-only exclusions and fallbacks are dropped.
    """
    shadow = array("d", d.shadow_pmf).tobytes() if d.shadow_pmf is not None else None
    return (
        d.event_id,
        d.ts,
        d.features,
        d.models,
        d.chosen,
        array("d", d.pmf).tobytes(),
        d.explored,
        d.reason,
        d.input_tokens,
        d.tenant,
        shadow,
        d.shadow_chosen,
    )


def unpack_pending(held: PendingDecision) -> Decision:
    event_id, ts, feats, models, chosen, pmf, explored, reason, input_tokens, tenant, shadow, shadow_chosen = held
    return Decision(
        event_id,
        ts,
        feats,
        models,
        chosen,
        _floats(pmf),
        explored,
        reason,
        input_tokens,
        tenant,
        shadow_pmf=_floats(shadow) if shadow is not None else None,
        shadow_chosen=shadow_chosen,
    )


def _floats(packed: bytes) -> tuple[float, ...]:
    return tuple(memoryview(packed).cast("d"))
