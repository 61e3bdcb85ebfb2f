"""An online inspection's evidence (网上巡查): a fresh snapshot of every camera in the mall's
required places, every device's state and the compliance result, answered as one checklist.

Every item has a stable ``item_id`` (``camera:<id>``, ``device:<id>``, ``role:<role>``,
``rule:<id>``) that a rectification notice can name. A camera that cannot give a picture in
time is an item with the reason, never left out; a required place without any camera is an
item of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.errors import AdapterError
from hub.compliance.rules import RULES_BY_ID
from hub.config import SiteConfig
from hub.linkage.snapshots import SnapshotStore, sniff_content_type
from hub.notices.model import INSPECTION_SCHEMA, NoticeError, check_site
from hub.site import SiteIndex
from hub.store.models import DeviceState
from hub.store.writer import iso

log = logging.getLogger(__name__)

#: The places S64 §二(一)四 asks cameras for, in the order the checklist lists them.
INSPECTED_ROLES: tuple[str, ...] = (
    "gate",
    "entrance",
    "perimeter",
    "passage",
    "parking",
    "finance_room",
    "monitoring_room",
)
#: Roles that must have at least one camera (entrances count as passages when absent).
ROLES_NEEDING_CAMERA: tuple[str, ...] = (
    "gate",
    "perimeter",
    "passage",
    "parking",
    "finance_room",
    "monitoring_room",
)
ROLE_TEXT: dict[str, tuple[str, str]] = {
    "gate": ("出入口", "gates"),
    "entrance": ("入口", "entrances"),
    "perimeter": ("周界", "perimeter"),
    "passage": ("通道", "passages"),
    "parking": ("停车场", "parking"),
    "finance_room": ("财务室", "finance room"),
    "monitoring_room": ("监控室", "monitoring room"),
}
CONCURRENCY = 8
PICTURE_ATTEMPTS = 3
DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 120.0
INLINE_TOTAL_BYTES = 512 * 1024
"""Pictures travel inline only up to this much per answer: NATS's MQTT listener refuses
messages over 1 MB by default. Beyond it, each picture is a signed URL on the hub."""


class Pictures(Protocol):
    async def snapshot(self, camera_id: str) -> bytes: ...


async def take_picture(
    pictures: Pictures, camera_id: str, timeout_s: float, attempts: int = PICTURE_ATTEMPTS
) -> bytes:
    """One picture as evidence. A camera that fails (a busy encoder, a dropped connection)
    is asked again, up to ``attempts`` times; callers bound the total time."""
    for attempt in range(1, attempts + 1):
        try:
            async with asyncio.timeout(timeout_s):
                return await pictures.snapshot(camera_id)
        except (AdapterError, TimeoutError) as exc:
            if attempt == attempts:
                raise
            log.info("%s: no picture (%s); asking again", camera_id, exc)
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class InspectRequest:
    timeout_s: float
    inline_max_bytes: int
    officer: dict[str, str] | None


def parse_request(body: Mapping[str, Any], site_id: str, inline_cap: int) -> InspectRequest:
    """The ``inspect`` command's body (or ``NoticeError``)."""
    check_site(body, site_id, required=False)
    timeout = body.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise NoticeError("invalid", "timeout_s must be a number")
    if not 1 <= timeout <= MAX_TIMEOUT_S:
        raise NoticeError("invalid", f"timeout_s must be between 1 and {MAX_TIMEOUT_S:g}")
    inline = body.get("inline_max_bytes", inline_cap)
    if isinstance(inline, bool) or not isinstance(inline, int) or inline < 0:
        raise NoticeError("invalid", "inline_max_bytes must be a non-negative integer")
    officer = body.get("officer")
    out: dict[str, str] | None = None
    if officer is not None:
        if not isinstance(officer, Mapping):
            raise NoticeError("invalid", "officer must be an object")
        name = officer.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise NoticeError("invalid", "officer.name (1-128 characters) is required")
        out = {"name": name}
        ident = officer.get("id")
        if isinstance(ident, str) and 0 < len(ident) <= 128:
            out["id"] = ident
    return InspectRequest(float(timeout), min(inline, inline_cap), out)


def _location(info: Any) -> dict[str, Any]:
    loc = info.location
    if loc is None:
        return {"role": None, "floor": None, "zone": None}
    return {"role": loc.role, "floor": loc.floor, "zone": loc.zone}


def _state(row: Any | None) -> dict[str, Any]:
    if row is None:
        return {"state": "unknown", "since": None, "reason": "never probed"}
    return {"state": row.state, "since": iso(row.since), "reason": row.reason or ""}


class Inspection:
    """Gathers one inspection's evidence."""

    def __init__(
        self,
        config: SiteConfig,
        index: SiteIndex,
        engine: AsyncEngine,
        pictures: Pictures,
        snapshots: SnapshotStore,
        compliance: Callable[[], Awaitable[Any]],
        *,
        clock: Callable[[], datetime],
        camera_timeout_s: float,
    ) -> None:
        self.config = config
        self.index = index
        self.engine = engine
        self.pictures = pictures
        self.snapshots = snapshots
        self.compliance = compliance
        self.clock = clock
        self.camera_timeout_s = camera_timeout_s

    async def _picture(self, camera_id: str) -> bytes:
        return await take_picture(self.pictures, camera_id, self.camera_timeout_s)

    def cameras(self) -> list[Any]:
        """Cameras in the inspected places, in checklist order (role, then config order)."""
        order = {r: i for i, r in enumerate(INSPECTED_ROLES)}
        cams = [
            c
            for c in self.config.devices.cameras
            if c.location.role is not None and c.location.role in order
        ]
        return sorted(cams, key=lambda c: order[str(c.location.role)])

    async def run(self, inspection_id: str, req: InspectRequest) -> dict[str, Any]:
        started = self.clock()
        async with self.engine.connect() as conn:
            states = {r.device_id: r for r in (await conn.execute(select(DeviceState))).all()}
        cameras = self.cameras()
        gate = asyncio.Semaphore(CONCURRENCY)
        budget = {"left": INLINE_TOTAL_BYTES}

        async def one(cam: Any) -> dict[str, Any]:
            info = self.index.device(cam.id)
            item: dict[str, Any] = {
                "item_id": f"camera:{cam.id}",
                "kind": "camera",
                "device_id": cam.id,
                "name": cam.name,
                **_location(info),
                "state": _state(states.get(cam.id)),
            }
            try:
                async with gate:
                    data = await self._picture(cam.id)
            except TimeoutError:
                item["error"] = {"code": "timeout", "message": "no picture in time"}
                return item
            except AdapterError as exc:
                item["error"] = {"code": "unavailable", "message": str(exc)[:300]}
                return item
            content_type = sniff_content_type(data)
            if content_type is None:
                item["error"] = {"code": "not_an_image", "message": "the camera sent no picture"}
                return item
            snap = await self.snapshots.save(
                inspection_id, cam.id, data, content_type, self.clock()
            )
            inline = snap.size <= req.inline_max_bytes and snap.size <= budget["left"]
            if inline:
                budget["left"] -= snap.size
            item["snapshot"] = self.snapshots.attachment(
                snap, data, inline_max_bytes=req.inline_max_bytes if inline else -1
            )
            return item

        tasks = [asyncio.ensure_future(one(c)) for c in cameras]
        done: set[asyncio.Future[dict[str, Any]]] = set()
        if tasks:
            done, _ = await asyncio.wait(tasks, timeout=req.timeout_s)
        items: list[dict[str, Any]] = []
        for cam, task in zip(cameras, tasks, strict=True):
            if task in done and task.exception() is None:
                items.append(task.result())
                continue
            if task in done:
                log.warning("inspection %s: %s failed: %r", inspection_id, cam.id, task.exception())
                error = {"code": "internal", "message": type(task.exception()).__name__}
            else:
                task.cancel()
                error = {"code": "timeout", "message": "the inspection's time ran out"}
            info = self.index.device(cam.id)
            items.append(
                {
                    "item_id": f"camera:{cam.id}",
                    "kind": "camera",
                    "device_id": cam.id,
                    "name": cam.name,
                    **_location(info),
                    "state": _state(states.get(cam.id)),
                    "error": error,
                }
            )
        await asyncio.gather(*tasks, return_exceptions=True)
        present = {c.location.role for c in cameras}
        for role in ROLES_NEEDING_CAMERA:
            if role in present or (role == "passage" and "entrance" in present):
                continue
            zh, en = ROLE_TEXT[role]
            items.append(
                {
                    "item_id": f"role:{role}",
                    "kind": "role",
                    "role": role,
                    "error": {
                        "code": "no_camera",
                        "message": f"{zh}未配置摄像机 / no camera covers the {en}",
                    },
                }
            )
        for info in self.index.devices.values():
            if info.type == "camera":
                continue
            items.append(
                {
                    "item_id": f"device:{info.id}",
                    "kind": "device",
                    "device_id": info.id,
                    "name": info.name,
                    "type": info.type,
                    **_location(info),
                    "state": _state(states.get(info.id)),
                }
            )
        result = await self.compliance()
        for r in result.rules:
            rule = RULES_BY_ID[r.rule_id]
            items.append(
                {
                    "item_id": f"rule:{r.rule_id}",
                    "kind": "rule",
                    "rule_id": r.rule_id,
                    "status": r.status,
                    "title": rule.title.to_json(),
                    "since": iso(r.since) if r.since else None,
                    "explanation": r.outcome.explanation.to_json(),
                }
            )
        site = self.config.site
        out: dict[str, Any] = {
            "schema": INSPECTION_SCHEMA,
            "inspection_id": inspection_id,
            "site": {"id": site.id, "name": site.name, "address": site.address},
            "started_at": iso(started),
            "finished_at": iso(self.clock()),
            "compliance": result.summary(),
            "items": items,
        }
        if req.officer is not None:
            out["officer"] = req.officer
        return out
