"""The operator's routes under /admin: settings, weights, exploration, shadow mode, snapshots, policy files, reload."""

from __future__ import annotations

import hashlib

from aiohttp import web

from banditroute import snapshot
from banditroute.api.requests import (
    ApiError,
    parse_exploration,
    parse_json_object,
    parse_shadow,
    parse_target,
    parse_weights,
)
from banditroute.http.middleware import json_response, read_object
from banditroute.http.state import SERVICE
from banditroute.service.controls import KEEP, IncompatiblePolicy, ReloadError


async def admin_settings(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].settings())


async def admin_weights(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    current = (service.config.reward.cost_weight, service.config.reward.latency_weight)
    body = await read_object(request)
    cost_weight, latency_weight = parse_weights(body, current)
    sets_target, target = parse_target(body)
    return json_response(await service.set_weights(cost_weight, latency_weight, target if sets_target else KEEP))


async def admin_exploration(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return json_response(await service.set_exploration(parse_exploration(await read_object(request))))


async def admin_shadow(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    baseline = parse_shadow(await read_object(request), service.router.catalog.names)
    return json_response(await service.set_shadow(baseline))


async def admin_shadow_summary(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].shadow_summary())


async def admin_snapshot(request: web.Request) -> web.Response:
    ckpt = await request.app[SERVICE].checkpoint(force=True)
    if ckpt is None:
        raise ApiError(409, "policy_not_finite", "the live policy has NaN or infinite weights; nothing was written")
    return json_response(
        {
            "learned_seq": ckpt.learned_seq,
            "sha256": hashlib.sha256(ckpt.model).hexdigest(),
            "bytes": len(ckpt.model),
            "ts": ckpt.ts,
        }
    )


async def admin_policy_download(request: web.Request) -> web.Response:
    pf = request.app[SERVICE].policy_file()
    return web.Response(
        body=pf.dumps(),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="banditroute-policy-{pf.sha256[:12]}.json"'},
    )


async def admin_policy_load(request: web.Request) -> web.Response:
    try:
        pf = snapshot.loads(parse_json_object(await request.read()))
        described = await request.app[SERVICE].load_policy(pf)
    except snapshot.PolicyFileError as exc:
        raise ApiError(400, "invalid_policy", str(exc)) from None
    except IncompatiblePolicy as exc:
        raise ApiError(409, "incompatible_policy", str(exc)) from None
    return json_response(described)


async def admin_reload(request: web.Request) -> web.Response:
    """Re-read the configuration file: new catalog and rules at once, the learned policy kept."""
    try:
        summary = request.app[SERVICE].reload()
    except ReloadError as exc:
        raise ApiError(400, "invalid_config", str(exc)) from None
    return json_response({"status": "reloaded", **summary})
