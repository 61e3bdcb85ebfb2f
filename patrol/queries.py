"""Reading the patrol store for the city overview and the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from patrol.models import EventRow, MallRow, NoticeRow, utc

OPEN_STATES = ("open", "ack_sent")
NOTICE_OPEN = ("sent", "open", "answered", "rejected")
"""A rectification notice not closed (nor refused by the hub)."""
MALL_SORTS = ("site_id", "name", "district", "online", "open_alarms", "devices_offline")
ALARM_STATES = ("open", "ack_sent", "acknowledged", "closed", "all")


def iso(dt: datetime | None) -> str | None:
    d = utc(dt)
    return (
        None
        if d is None
        else d.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


async def list_malls(
    engine: AsyncEngine,
    *,
    registry: dict[str, tuple[str, str]] | None = None,
    district: str | None = None,
    sort: str = "site_id",
    descending: bool = False,
) -> list[dict[str, Any]]:
    """Every mall with its connection state, open alarms by priority, compliance summary,
    devices offline and receipts outstanding. ``registry`` gives names and districts from
    the configuration, which win over what the hubs say."""
    from patrol.models import DeviceRow

    async with AsyncSession(engine) as session:
        malls = (await session.execute(select(MallRow))).scalars().all()
    async with engine.connect() as conn:
        open_rows = (
            await conn.execute(
                select(EventRow.site_id, EventRow.priority, func.count())
                .where(
                    EventRow.category == "alarm",
                    EventRow.state.in_(OPEN_STATES),
                    EventRow.test.is_(False),
                )
                .group_by(EventRow.site_id, EventRow.priority)
            )
        ).all()
        offline_rows = (
            await conn.execute(
                select(DeviceRow.site_id, func.count())
                .where(DeviceRow.state == "offline")
                .group_by(DeviceRow.site_id)
            )
        ).all()
        device_rows = (
            await conn.execute(select(DeviceRow.site_id, func.count()).group_by(DeviceRow.site_id))
        ).all()
        notice_rows = (
            await conn.execute(
                select(
                    NoticeRow.site_id, NoticeRow.state, NoticeRow.overdue, NoticeRow.deadline
                ).where(NoticeRow.state.in_(NOTICE_OPEN))
            )
        ).all()
        receipt_rows = (
            await conn.execute(
                select(EventRow.site_id, func.count())
                .where(EventRow.receipt_sent_at.is_(None))
                .group_by(EventRow.site_id)
            )
        ).all()
    by_priority: dict[str, dict[str, int]] = {}
    for site, prio, n in open_rows:
        by_priority.setdefault(site, {})[str(prio)] = int(n)
    offline = {s: int(n) for s, n in offline_rows}
    devices = {s: int(n) for s, n in device_rows}
    receipts = {s: int(n) for s, n in receipt_rows}
    now = datetime.now(UTC)
    notices: dict[str, list[int]] = {}
    for site, nstate, overdue, deadline in notice_rows:
        counts = notices.setdefault(site, [0, 0])
        counts[0] += 1
        owes = nstate in ("sent", "open", "rejected")
        due = utc(deadline)
        counts[1] += bool(overdue or (owes and due is not None and due <= now))
    reg = registry or {}
    known = {m.site_id: m for m in malls}
    out = []
    for site in sorted(set(known) | set(reg)):
        m = known.get(site)
        name, dist = reg.get(site, ("", ""))
        prios = by_priority.get(site, {})
        compliance = None
        if m is not None and m.compliance is not None:
            c: dict[str, Any] = dict(m.compliance)
            failing = c.get("failing")
            compliance = {
                "overall": m.compliance_overall,
                "evaluated_at": c.get("evaluated_at"),
                "counts": c.get("counts"),
                "failing": [
                    {"rule": f.get("rule"), "status": f.get("status"), "title": f.get("title")}
                    for f in (failing if isinstance(failing, list) else [])
                    if isinstance(f, dict)
                ][:20],
            }
        state = m.state if m is not None else "unknown"
        out.append(
            {
                "site_id": site,
                "name": name or (m.name if m is not None else "") or site,
                "district": dist or (m.district if m is not None else ""),
                "online": state == "online",
                "state": state,
                "offline_since": iso(m.offline_since) if m is not None else None,
                "offline_reason": (m.offline_reason if m is not None else "") or None,
                "status_at": iso(m.status_ts) if m is not None else None,
                "open_alarms": sum(prios.values()),
                "open_alarms_by_priority": prios,
                "compliance": compliance,
                "devices": devices.get(site, 0),
                "devices_offline": offline.get(site, 0),
                "receipts_outstanding": receipts.get(site, 0),
                "notices_open": notices.get(site, [0, 0])[0],
                "notices_overdue": notices.get(site, [0, 0])[1],
                "last_seq": m.last_seq if m is not None else 0,
            }
        )
    if district:
        out = [m for m in out if m["district"] == district]
    out.sort(key=lambda m: (m[sort] is None, m[sort], m["site_id"]), reverse=descending)
    return out


def alarm_json(e: EventRow) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "site_id": e.site_id,
        "seq": e.seq,
        "kind": e.kind,
        "category": e.category,
        "priority": e.priority,
        "device_id": e.device_id,
        "text": {"zh": e.text_zh, "en": e.text_en},
        "occurred_at": iso(e.occurred_at),
        "stored_at": iso(e.stored_at),
        "state": e.state,
        "ack_by": e.ack_by or None,
        "ack_at": iso(e.ack_at),
        "receipt_sent": e.receipt_sent_at is not None,
        "deliveries": e.deliveries,
        "test": e.test,
    }


async def list_alarms(
    engine: AsyncEngine,
    *,
    state: str = "open",
    site_id: str | None = None,
    sites: list[str] | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Alarms across the city, most urgent first (priority, then newest)."""
    conds = [EventRow.category == "alarm"]
    if state == "open":
        conds.append(EventRow.state.in_(OPEN_STATES))
    elif state != "all":
        conds.append(EventRow.state == state)
    if site_id is not None:
        conds.append(EventRow.site_id == site_id)
    if sites is not None:
        conds.append(EventRow.site_id.in_(sites))
    async with AsyncSession(engine) as session:
        rows = (
            await session.execute(
                select(EventRow)
                .where(and_(*conds))
                .order_by(EventRow.priority, EventRow.stored_at.desc())
                .limit(limit)
            )
        ).scalars()
        return [alarm_json(e) for e in rows]


async def get_alarm(engine: AsyncEngine, event_id: str) -> dict[str, Any] | None:
    async with AsyncSession(engine) as session:
        e = (
            await session.execute(select(EventRow).where(EventRow.event_id == event_id))
        ).scalar_one_or_none()
    return None if e is None else alarm_json(e)
