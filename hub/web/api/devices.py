"""Devices: the list, one device, its probes and state changes, probe now, its thumbnail."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.store.writer import now_utc
from hub.web import queries
from hub.web.api.common import bytes_reply, deps_of, file_response, json_reply, principal
from hub.web.api.params import BIG, DEVICE_ID, LIMIT, q
from hub.web.routing import ARGS, Endpoint, conflict, not_found
from hub.web.schemas import obj, ref
from hub.web.state import jsonable, state_of


def _device_or_404(request: web.Request) -> str:
    device_id = request[ARGS]["device_id"]
    if device_id not in deps_of(request).index.devices:
        raise not_found(f"there is no device {device_id}")
    return str(device_id)


async def h_devices(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    a = request[ARGS]
    replies = state_of(request).replies
    replies.watch(deps.writer)
    kept = replies.devices(now_utc())
    if kept is None:
        generation = replies.generation
        kept = replies.keep_devices(await queries.devices(deps.engine, deps.index), generation)
    if not any(a.get(k) for k in ("floor", "zone", "type", "state", "not_online")):
        return bytes_reply(kept.body)
    items, counts = kept.items, kept.counts
    if a.get("floor"):
        items = [d for d in items if d["floor"] == a["floor"]]
    if a.get("zone"):
        items = [d for d in items if d["zone"] == a["zone"]]
    if a.get("type"):
        items = [d for d in items if d["type"] == a["type"]]
    if a.get("state"):
        items = [d for d in items if d["state"] == a["state"]]
    if a.get("not_online"):
        items = [d for d in items if d["state"] != "online"]
    return json_reply({"items": items, "counts": counts})


async def h_device(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    d = await queries.device(deps.engine, deps.index, _device_or_404(request))
    assert d is not None
    return json_reply(d)


async def h_probes(request: web.Request) -> web.StreamResponse:
    a = request[ARGS]
    items = await queries.probes(
        deps_of(request).engine, _device_or_404(request), a["limit"], a.get("before")
    )
    return json_reply({"items": items})


async def h_states(request: web.Request) -> web.StreamResponse:
    items = await queries.state_changes(
        deps_of(request).engine, _device_or_404(request), request[ARGS]["limit"]
    )
    return json_reply({"items": items})


async def h_probe_now(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    device_id = _device_or_404(request)
    p = principal(request)
    await deps.audit(p.actor, "device.probe_now", device_id)
    try:
        result = await deps.health.probe_now([device_id])
    except LookupError:
        raise conflict(f"{device_id} is not probed (it reports through its panel)") from None

    out: dict[str, Any] = {"device_id": device_id, "requested": True}
    res = jsonable(result[0]) if isinstance(result, list) and result else None
    if isinstance(res, dict):
        out["result"] = res
    return json_reply(out, 202)


async def h_thumbnail(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    device_id = _device_or_404(request)
    row = await queries.latest_camera_snapshot(deps.engine, device_id)
    if row is None:
        raise not_found(f"no picture from {device_id} yet")
    return file_response(deps, row.path, row.content_type, row.sha256)


ROUTES: tuple[Endpoint, ...] = (
    # devices
    Endpoint(
        "GET",
        "/api/v1/devices",
        h_devices,
        "list_devices",
        "Devices with their health",
        "devices",
        "viewer",
        params=(
            q("floor", {"type": "string", "maxLength": 64}, "Only this floor."),
            q("zone", {"type": "string", "maxLength": 64}, "Only this zone."),
            q("type", {"type": "string", "maxLength": 32}, "Only this device type."),
            q("state", {"enum": ["online", "degraded", "offline", "unknown"]}, "Only this state."),
            q("not_online", {"type": "boolean"}, "Only devices that are not online."),
        ),
        response=ref("DeviceList"),
    ),
    Endpoint(
        "GET",
        "/api/v1/devices/{device_id}",
        h_device,
        "get_device",
        "One device",
        "devices",
        "viewer",
        params=(DEVICE_ID,),
        response=ref("Device"),
    ),
    Endpoint(
        "GET",
        "/api/v1/devices/{device_id}/probes",
        h_probes,
        "device_probes",
        "Probe history (newest first)",
        "devices",
        "viewer",
        params=(
            DEVICE_ID,
            LIMIT,
            q(
                "before",
                {"type": "integer", "minimum": 1, "maximum": BIG},
                "Only probes with a smaller id (paging).",
            ),
        ),
        response=obj(["items"], items={"type": "array", "items": ref("Probe")}),
    ),
    Endpoint(
        "GET",
        "/api/v1/devices/{device_id}/states",
        h_states,
        "device_states",
        "State changes (newest first)",
        "devices",
        "viewer",
        params=(DEVICE_ID, LIMIT),
        response=obj(["items"], items={"type": "array", "items": ref("StateChange")}),
    ),
    Endpoint(
        "POST",
        "/api/v1/devices/{device_id}/probe",
        h_probe_now,
        "probe_device",
        "Probe now",
        "devices",
        "technician",
        params=(DEVICE_ID,),
        status=202,
        response=ref("ProbeNow"),
        errors=(409, 503),
    ),
    Endpoint(
        "GET",
        "/api/v1/devices/{device_id}/thumbnail",
        h_thumbnail,
        "device_thumbnail",
        "Latest picture from a camera",
        "devices",
        "viewer",
        params=(DEVICE_ID,),
        media="image/jpeg",
        response=None,
    ),
)
