"""Test mode: which devices or zones are in it, start and stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from hub.linkage.testmode import TestModeError, resolve_target
from hub.store.writer import iso, now_utc
from hub.web import queries
from hub.web.api.common import deps_of, json_reply, principal, via_of
from hub.web.api.params import path, strict_obj
from hub.web.routing import ARGS, BODY, Endpoint, not_found, unprocessable
from hub.web.schemas import ref

if TYPE_CHECKING:
    from hub.linkage.testmode import TestModeManager
    from hub.web.state import WebDeps


def _testmode(deps: WebDeps) -> TestModeManager:
    return deps.testmode


async def h_test_mode(request: web.Request) -> web.StreamResponse:
    targets = await queries.active_test_targets(deps_of(request).engine)
    return json_reply(
        {"items": [{"target": t, "until": iso(u)} for t, u in sorted(targets.items())]}
    )


def _resolve_target(deps: WebDeps, target: str) -> str:
    """``device:<id>`` / ``zone:<zone>`` (a bare name: device first, then zone), or 404."""

    try:
        return resolve_target(deps.config, deps.index, target)
    except TestModeError as exc:
        raise not_found(str(exc)) from None


async def h_test_mode_start(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    p = principal(request)
    body = request[BODY]
    tm = _testmode(deps)
    target = _resolve_target(deps, body["target"])
    try:
        entry = await tm.start(target, body["minutes"], by=p.name, via=via_of(p))
    except ValueError as exc:
        raise unprocessable(str(exc)) from None
    return json_reply({"target": entry.target, "until": iso(entry.until)}, 201)


async def h_test_mode_stop(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    p = principal(request)
    tm = _testmode(deps)
    target = _resolve_target(deps, request[ARGS]["target"])
    ended = await tm.stop(target, by=p.name, via=via_of(p))
    if not ended:
        raise not_found(f"{target} is not in test mode")
    return json_reply({"target": target, "until": iso(max(e.ended_at or now_utc() for e in ended))})


ROUTES: tuple[Endpoint, ...] = (
    # test mode
    Endpoint(
        "GET",
        "/api/v1/test-mode",
        h_test_mode,
        "list_test_mode",
        "Devices and zones in test mode",
        "test mode",
        "viewer",
        response=ref("TestModeList"),
    ),
    Endpoint(
        "POST",
        "/api/v1/test-mode",
        h_test_mode_start,
        "start_test_mode",
        "Put a device or zone (zone:<id>) in test mode",
        "test mode",
        "technician",
        body=strict_obj(
            {
                "target": {"type": "string", "minLength": 1, "maxLength": 96},
                "minutes": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1440,
                    "x-site-limit": "alarms.test_mode_max_minutes",
                    "description": "Whole minutes, at most the site's "
                    "alarms.test_mode_max_minutes (default 240; this document states the "
                    "running site's value).",
                },
            },
            ["target", "minutes"],
        ),
        status=201,
        response=ref("TestMode"),
        errors=(404, 503),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/test-mode/{target}",
        h_test_mode_stop,
        "stop_test_mode",
        "End test mode",
        "test mode",
        "technician",
        params=(
            path(
                "target",
                {"type": "string", "pattern": r"^(zone:)?[^/]{1,90}$"},
                "Device id or zone:<id>.",
            ),
        ),
        response=ref("TestMode"),
        errors=(503,),
    ),
)
