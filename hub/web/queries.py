"""Read-only queries behind the API and pages: devices with their health, events with
their story. Writes never happen here; they go through the store's single writer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.events import KINDS, kind_info
from hub.site import DeviceInfo, SiteIndex
from hub.store.models import (
    AuditLog,
    DeviceState,
    DeviceStateChange,
    Event,
    EventUpdate,
    Probe,
    Snapshot,
    TestMode,
)
from hub.store.writer import iso, now_utc


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _t(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


# --- devices ---------------------------------------------------------------------------------


def _findings(detail: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in detail.get("problems") or []:
        if isinstance(p, dict):
            out.append(
                {
                    "check": str(p.get("check", "")),
                    "zh": str(p.get("message_zh", "")),
                    "en": str(p.get("message_en", "")),
                    "warning": bool(p.get("warning", False)),
                }
            )
    return out


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _clock_offset(detail: dict[str, Any]) -> float | None:
    for key in ("clock_offset_s", "clock_offset"):
        v = _num(detail.get(key))
        if v is not None:
            return v
    return None


def _video(detail: dict[str, Any]) -> str | None:
    """The camera's video as its last check measured it, and where the picture was judged
    from: ``H264 1920x1080 · 24.9 fps · rtsp_sub`` (None before any video check)."""
    parts: list[str] = []
    stream = detail.get("stream")
    if isinstance(stream, dict) and stream.get("codec"):
        parts.append(f"{stream['codec']} {stream.get('width')}x{stream.get('height')}")
    fps = _num(detail.get("fps_measured"))
    if fps is not None:
        parts.append(f"{fps:.1f} fps")
    source = detail.get("video_source")
    if isinstance(source, str) and source:
        parts.append(source)
    error = detail.get("video_error") or detail.get("stream_error")
    if not parts and isinstance(error, str) and error:
        return error[:120]
    return " · ".join(parts) or None


async def active_test_targets(engine: AsyncEngine) -> dict[str, datetime]:
    """Devices and zones in test mode now, with the time each leaves it."""
    now = now_utc()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(TestMode.target, TestMode.until).where(
                    TestMode.ended_at.is_(None), TestMode.until > now
                )
            )
        ).all()
    out: dict[str, datetime] = {}
    for r in rows:
        out[r.target] = max(r.until, out.get(r.target, r.until))
    return out


def device_json(
    info: DeviceInfo,
    row: Any | None,
    probe: Any | None,
    tests: dict[str, datetime],
    thumbnail: bool,
    parent_row: Any | None = None,
) -> dict[str, Any]:
    detail: dict[str, Any] = dict(row.detail or {}) if row is not None else {}
    reason_prefix = ""
    if row is None and parent_row is not None:
        # A button or detector has no probe of its own: it is supervised through its panel,
        # so it is as reachable as the panel is.
        row = parent_row
        reason_prefix = f"{info.parent}: "
    loc = info.location
    latency = _num(detail.get("latency_ms"))
    if latency is None and probe is not None:
        latency = probe.latency_ms
    candidates = [tests.get(f"device:{info.id}")]
    if info.parent is not None:
        candidates.append(tests.get(f"device:{info.parent}"))
    if loc is not None:
        candidates.append(tests.get(f"zone:{loc.zone}"))
    found = [c for c in candidates if c is not None]
    test_until = max(found) if found else None
    return {
        "id": info.id,
        "name": info.name,
        "type": info.type,
        "floor": loc.floor if loc else None,
        "zone": loc.zone if loc else None,
        "role": loc.role if loc else None,
        "required": info.required,
        "parent": info.parent,
        "state": row.state if row is not None else "unknown",
        "since": _t(row.since) if row is not None else None,
        # The panel's name before its reason, when it gives one (never a dangling "panel:").
        "reason": reason_prefix + row.reason if row is not None and row.reason else "",
        "last_seen": _t(row.last_seen) if row is not None else None,
        "latency_ms": latency,
        "clock_offset_s": _clock_offset(detail),
        "video": _video(detail) if info.type == "camera" else None,
        "findings": _findings(detail),
        "last_probe_at": _t(probe.at) if probe is not None else None,
        "thumbnail_url": f"/api/v1/devices/{info.id}/thumbnail" if thumbnail else None,
        "test_mode_until": _t(test_until),
    }


async def devices(engine: AsyncEngine, index: SiteIndex) -> list[dict[str, Any]]:
    """Every configured device with its current health, ordered by floor, zone, name."""
    async with engine.connect() as conn:
        states = {r.device_id: r for r in (await conn.execute(select(DeviceState))).all()}
        last_ids = select(func.max(Probe.id)).group_by(Probe.device_id)
        probes = {
            r.device_id: r
            for r in (await conn.execute(select(Probe).where(Probe.id.in_(last_ids)))).all()
        }
        with_snap = set((await conn.execute(select(Snapshot.camera_id).distinct())).scalars().all())
    tests = await active_test_targets(engine)
    out = []
    for n, info in enumerate(index.devices.values(), 1):
        parent = states.get(info.parent) if info.parent else None
        thumbnail = info.type == "camera" and info.id in with_snap
        out.append(
            device_json(info, states.get(info.id), probes.get(info.id), tests, thumbnail, parent)
        )
        if n % 128 == 0:
            await asyncio.sleep(0)  # a big site's list leaves the alarm path its turns
    out.sort(key=lambda d: (d["floor"] or "", d["zone"] or "", d["name"], d["id"]))
    return out


async def device(engine: AsyncEngine, index: SiteIndex, device_id: str) -> dict[str, Any] | None:
    info = index.devices.get(device_id)
    if info is None:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(DeviceState).where(DeviceState.device_id == device_id))
        ).first()
        probe = (
            await conn.execute(
                select(Probe).where(Probe.device_id == device_id).order_by(Probe.id.desc()).limit(1)
            )
        ).first()
        snap = (
            await conn.execute(select(Snapshot.id).where(Snapshot.camera_id == device_id).limit(1))
        ).first()
        parent = None
        if info.parent is not None:
            parent = (
                await conn.execute(select(DeviceState).where(DeviceState.device_id == info.parent))
            ).first()
    tests = await active_test_targets(engine)
    return device_json(info, row, probe, tests, info.type == "camera" and snap is not None, parent)


async def probes(
    engine: AsyncEngine, device_id: str, limit: int, before: int | None
) -> list[dict[str, Any]]:
    q = select(Probe).where(Probe.device_id == device_id)
    if before is not None:
        q = q.where(Probe.id < before)
    async with engine.connect() as conn:
        rows = (await conn.execute(q.order_by(Probe.id.desc()).limit(limit))).all()
    return [
        {
            "id": r.id,
            "at": iso(r.at),
            "ok": bool(r.ok),
            "latency_ms": r.latency_ms,
            "detail": dict(r.detail or {}),
        }
        for r in rows
    ]


async def state_changes(engine: AsyncEngine, device_id: str, limit: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(DeviceStateChange)
                .where(DeviceStateChange.device_id == device_id)
                .order_by(DeviceStateChange.at.desc(), DeviceStateChange.id.desc())
                .limit(limit)
            )
        ).all()
    return [{"at": iso(r.at), "state": r.state, "reason": r.reason or ""} for r in rows]


async def latest_camera_snapshot(engine: AsyncEngine, camera_id: str) -> Any | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                select(Snapshot)
                .where(Snapshot.camera_id == camera_id)
                .order_by(Snapshot.taken_at.desc(), Snapshot.id.desc())
                .limit(1)
            )
        ).first()


async def snapshot(engine: AsyncEngine, snapshot_id: int) -> Any | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(Snapshot).where(Snapshot.id == snapshot_id))).first()


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    q: str | None = None
    kind: str | None = None
    category: str | None = None
    priority: int | None = None
    max_priority: int | None = None
    states: tuple[str, ...] = ()
    floor: str | None = None
    zone: str | None = None
    device: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    test_mode: bool | None = None


def _filtered(index: SiteIndex, f: EventFilter, base: Select[Any]) -> Select[Any] | None:
    q = base
    if f.kind:
        q = q.where(or_(Event.kind == f.kind, Event.kind.startswith(f.kind + ".")))
    if f.category:
        q = q.where(Event.category == f.category)
    if f.priority is not None:
        q = q.where(Event.priority == f.priority)
    if f.max_priority is not None:
        q = q.where(Event.priority <= f.max_priority)
    if f.states:
        q = q.where(Event.state.in_(f.states))
    if f.device:
        q = q.where(Event.device_id == f.device)
    if f.floor or f.zone:
        ids = [
            d.id
            for d in index.devices.values()
            if d.location is not None
            and (not f.floor or d.location.floor == f.floor)
            and (not f.zone or d.location.zone == f.zone)
        ]
        if not ids:
            return None
        q = q.where(Event.device_id.in_(ids))
    if f.since is not None:
        q = q.where(Event.received_at >= f.since)
    if f.until is not None:
        q = q.where(Event.received_at < f.until)
    if f.test_mode is not None:
        q = q.where(Event.test_mode.is_(f.test_mode))
    if f.q:
        needle = f.q.strip().lower()
        like = f"%{needle.replace('%', '').replace('_', '')}%"
        named = [
            d.id
            for d in index.devices.values()
            if needle in d.name.lower()
            or (d.location is not None and needle in d.location.description.lower())
        ]
        kinds = [
            name
            for name in _known_kinds()
            if needle in kind_info(name).zh.lower() or needle in kind_info(name).en.lower()
        ]
        conds = [
            func.lower(Event.kind).like(like),
            func.lower(Event.device_id).like(like),
            func.lower(Event.note).like(like),
            func.lower(Event.event_id).like(like),
            func.lower(Event.state_by).like(like),
        ]
        if named:
            conds.append(Event.device_id.in_(named))
        if kinds:
            conds.append(Event.kind.in_(kinds))
        q = q.where(or_(*conds))
    return q


def _known_kinds() -> list[str]:
    return list(KINDS)


def event_json(index: SiteIndex, r: Any) -> dict[str, Any]:
    """One event as the list and the console show it."""
    message: dict[str, Any] = dict(r.message or {})
    info = index.device(r.device_id) if r.device_id else None
    loc = info.location if info is not None else None
    k = kind_info(r.kind)
    cams = []
    for c in message.get("cameras") or []:
        if isinstance(c, dict) and isinstance(c.get("id"), str):
            cam = index.devices.get(c["id"])
            cams.append({"id": c["id"], "name": cam.name if cam else c["id"]})
    text = _dict(message.get("text"))
    return {
        "event_id": r.event_id,
        "seq": r.seq,
        "kind": r.kind,
        "kind_text": {"zh": k.zh, "en": k.en},
        "category": r.category,
        "priority": r.priority,
        "device_id": r.device_id,
        "device_name": info.name if info is not None else None,
        "floor": loc.floor if loc else None,
        "zone": loc.zone if loc else None,
        "occurred_at": iso(r.occurred_at),
        "received_at": iso(r.received_at),
        "state": r.state,
        "state_at": _t(r.state_at),
        "state_by": r.state_by,
        "state_via": r.state_via,
        "disposition": r.disposition,
        "note": r.note,
        "test_mode": bool(r.test_mode),
        "first_published_at": _t(r.first_published_at),
        "receipted_at": _t(r.receipted_at),
        "receipted_by": r.receipted_by,
        "cameras": cams,
        "text": {"zh": str(text.get("zh", k.zh)), "en": str(text.get("en", k.en))},
    }


def event_from_message(
    index: SiteIndex, message: dict[str, Any], test_mode: bool
) -> dict[str, Any]:
    """An event for the live console straight from its police message (no query)."""
    dev = _dict(message.get("device"))
    loc = _dict(dev.get("location"))
    kind = str(message.get("kind", ""))
    k = kind_info(kind)
    cams = []
    for c in message.get("cameras") or []:
        if isinstance(c, dict) and isinstance(c.get("id"), str):
            cam = index.devices.get(c["id"])
            cams.append({"id": c["id"], "name": cam.name if cam else c["id"]})
    text = _dict(message.get("text"))
    return {
        "event_id": message.get("event_id"),
        "seq": message.get("seq"),
        "kind": kind,
        "kind_text": {"zh": k.zh, "en": k.en},
        "category": message.get("category"),
        "priority": message.get("priority"),
        "device_id": dev.get("id"),
        "device_name": dev.get("name"),
        "floor": loc.get("floor"),
        "zone": loc.get("zone"),
        "occurred_at": message.get("occurred_at"),
        "received_at": message.get("received_at"),
        "state": "new",
        "state_at": None,
        "state_by": None,
        "state_via": None,
        "disposition": None,
        "note": None,
        "test_mode": test_mode,
        "first_published_at": None,
        "receipted_at": None,
        "receipted_by": None,
        "cameras": cams,
        "text": {"zh": str(text.get("zh", k.zh)), "en": str(text.get("en", k.en))},
    }


async def events(
    engine: AsyncEngine, index: SiteIndex, f: EventFilter, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    q = _filtered(index, f, select(Event))
    if q is None:
        return [], 0
    cq = _filtered(index, f, select(func.count()).select_from(Event))
    assert cq is not None
    async with engine.connect() as conn:
        total = int((await conn.execute(cq)).scalar() or 0)
        rows = (await conn.execute(q.order_by(Event.seq.desc()).limit(limit).offset(offset))).all()
    return [event_json(index, r) for r in rows], total


async def event_row(engine: AsyncEngine, event_id: str) -> Any | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(Event).where(Event.event_id == event_id))).first()


async def event_story(
    engine: AsyncEngine, index: SiteIndex, event_id: str
) -> dict[str, Any] | None:
    """The event with everything that happened to it, in order."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(Event).where(Event.event_id == event_id))).first()
        if row is None:
            return None
        updates = (
            await conn.execute(
                select(EventUpdate)
                .where(EventUpdate.event_id == event_id)
                .order_by(EventUpdate.update_seq, EventUpdate.id)
            )
        ).all()
        snaps = (
            await conn.execute(
                select(Snapshot).where(Snapshot.event_id == event_id).order_by(Snapshot.id)
            )
        ).all()
        audit = (
            await conn.execute(
                select(AuditLog).where(AuditLog.subject == event_id).order_by(AuditLog.id)
            )
        ).all()
    linkage: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for u in updates:
        msg = dict(u.message or {})
        for item in msg.get("linkage") or []:
            if isinstance(item, dict):
                linkage.append(
                    {k: item.get(k) for k in ("type", "target", "outcome", "detail", "at")}
                )
        st = msg.get("state")
        if isinstance(st, dict):
            states.append(
                {k: st.get(k) for k in ("state", "by", "via", "at", "note", "disposition")}
            )
    timeline: list[dict[str, Any]] = [
        {"at": iso(row.received_at), "what": "stored", "by": "hub", "detail": {"seq": row.seq}}
    ]
    if row.first_published_at is not None:
        timeline.append(
            {"at": iso(row.first_published_at), "what": "published", "by": "hub", "detail": {}}
        )
    for a in audit:
        if a.action == "event.stored":
            continue
        timeline.append(
            {"at": iso(a.at), "what": a.action, "by": a.actor, "detail": dict(a.detail or {})}
        )
    if row.receipted_at is not None:
        timeline.append(
            {
                "at": iso(row.receipted_at),
                "what": "police.receipt",
                "by": row.receipted_by or "police",
                "detail": {},
            }
        )
    for u in updates:
        msg = dict(u.message or {})
        parts = sorted(k for k in ("state", "attachments", "linkage", "escalation") if k in msg)
        timeline.append(
            {
                "at": iso(u.created_at),
                "what": "update",
                "by": "hub",
                "detail": {"update_seq": u.update_seq, "parts": parts},
            }
        )
    timeline.sort(key=lambda t: str(t["at"]))
    notes = [
        {"at": iso(a.at), "by": a.actor, "text": str((a.detail or {}).get("text", ""))}
        for a in audit
        if a.action == "event.note"
    ]
    return {
        "event": event_json(index, row),
        "message": dict(row.message or {}),
        "updates": [
            {"update_seq": u.update_seq, "at": iso(u.created_at), "message": dict(u.message or {})}
            for u in updates
        ],
        "states": states,
        "linkage": linkage,
        "snapshots": [snapshot_json(index, s) for s in snaps],
        "notes": notes,
        "receipt": (
            {"at": iso(row.receipted_at), "by": row.receipted_by}
            if row.receipted_at is not None
            else None
        ),
        "timeline": timeline,
    }


def snapshot_json(index: SiteIndex, s: Any) -> dict[str, Any]:
    cam = index.devices.get(s.camera_id)
    return {
        "id": s.id,
        "event_id": s.event_id,
        "camera_id": s.camera_id,
        "camera_name": cam.name if cam else s.camera_id,
        "taken_at": iso(s.taken_at),
        "content_type": s.content_type,
        "bytes": s.size,
        "sha256": s.sha256,
        "url": f"/api/v1/snapshots/{s.id}",
    }


async def audit_entries(
    engine: AsyncEngine,
    *,
    actor: str | None,
    action: str | None,
    subject: str | None,
    limit: int,
    before: int | None,
) -> list[dict[str, Any]]:
    q = select(AuditLog)
    if actor:
        q = q.where(AuditLog.actor == actor)
    if action:
        q = q.where(AuditLog.action == action)
    if subject:
        q = q.where(AuditLog.subject == subject)
    if before is not None:
        q = q.where(AuditLog.id < before)
    async with engine.connect() as conn:
        rows = (await conn.execute(q.order_by(AuditLog.id.desc()).limit(limit))).all()
    return [
        {
            "id": r.id,
            "at": iso(r.at),
            "actor": r.actor,
            "action": r.action,
            "subject": r.subject,
            "detail": dict(r.detail or {}),
            "hash": r.hash,
        }
        for r in rows
    ]
