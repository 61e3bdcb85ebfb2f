"""The facts the rules look at, loaded from the store as they stood at one moment.

Everything the store keeps history of is reconstructed for that moment: device states (from
``device_state_changes``), events, acknowledgements and linkage timings (from ``events`` and
``event_updates``), records (a record counts from when it was entered), the audit log. What
has no history (a camera's clock offset, resolution, video findings, panel supervision, the
police link) is read live from ``device_state`` and the link, and for a past moment from the
compliance snapshot stored at or before it, if that snapshot is recent enough to still
describe the moment; otherwise the value is missing and the rules say ``unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.compliance.facts import (
    AVAILABILITY_WINDOW,
    DETAIL_KEYS,
    MEASURE_DAYS,
    SNAPSHOT_VALID,
    TEST_KINDS,
    UP_STATES,
    AuditFacts,
    DeviceFacts,
    EventFacts,
    Facts,
    LinkageFacts,
    LinkFacts,
    LinkStatus,
    PreviousResult,
    RecordFacts,
)
from hub.compliance.notice_facts import load_notice_facts
from hub.compliance.outcome import parse_time
from hub.config import SiteConfig
from hub.site import SiteIndex
from hub.store.audit import GENESIS, chain_hash
from hub.store.models import (
    AuditLog,
    ComplianceSnapshot,
    DeviceState,
    DeviceStateChange,
    Event,
    EventUpdate,
    Record,
)
from hub.store.writer import iso, now_utc


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


async def load_facts(
    engine: AsyncEngine,
    config: SiteConfig,
    at: datetime | None = None,
    *,
    link: LinkFacts | None = None,
    audit: AuditFacts | None = None,
    previous: PreviousResult | None = None,
    live: bool | None = None,
) -> Facts:
    """Load the facts as of ``at`` (default now).

    ``at`` within a second of now reads current device states and ``link``; an earlier
    ``at`` reconstructs states from history and takes values without history from the
    compliance snapshot at or before it. ``previous`` overrides the snapshot as the source
    of each rule's ``since`` (the service passes its own last result). ``live`` forces the
    current-state reading for ``at`` (the service evaluating at its own clock).
    """
    now = now_utc()
    t = now if at is None else _utc(at)
    if live is None:
        live = t >= now - timedelta(seconds=1)
        if live:
            t = now
    facts = Facts(config=config, at=t, live=live)
    async with engine.connect() as conn:
        snap = (
            await conn.execute(
                select(ComplianceSnapshot.at, ComplianceSnapshot.body)
                .where(ComplianceSnapshot.at <= t)
                .order_by(ComplianceSnapshot.at.desc(), ComplianceSnapshot.id.desc())
                .limit(1)
            )
        ).first()
        snap_at = _aware(snap.at) if snap is not None else None
        snap_body: Mapping[str, Any] = snap.body if snap is not None else {}
        fresh = snap_at is not None and t - snap_at <= SNAPSHOT_VALID
        facts.previous = previous or (
            previous_from_body(snap_at, snap_body) if snap_at is not None else None
        )
        snap_facts: Mapping[str, Any] = snap_body.get("facts", {}) if fresh else {}
        if fresh:
            facts.snapshot_at = snap_at

        facts.devices = await _devices(conn, config, t, live, snap_facts, snap_at)
        events, linkage = await _events(conn, t, measure_days(config))
        facts.events = events
        facts.linkage = linkage
        facts.records = await _records(conn, t)
        facts.notices = await load_notice_facts(conn, t)
        starts = [
            (await conn.execute(select(func.min(AuditLog.at)))).scalar(),
            (await conn.execute(select(func.min(Event.received_at)))).scalar(),
            (await conn.execute(select(func.min(DeviceStateChange.at)))).scalar(),
        ]
        known = [s for s in (_aware(x) for x in starts) if s is not None and s <= t]
        facts.history_start = min(known) if known else None

    if live and link is not None:
        facts.link = link
    elif "link" in snap_facts and isinstance(snap_facts["link"], Mapping):
        facts.link = LinkFacts.from_json(snap_facts["link"])
    facts.audit = audit if audit is not None else await AuditChain().advance(engine, t)
    return facts


def previous_from_body(at: datetime, body: Mapping[str, Any]) -> PreviousResult:
    """Each rule's status and since, as a stored snapshot recorded them."""
    rules: dict[str, tuple[str, datetime | None]] = {}
    for r in body.get("rules", []):
        if isinstance(r, Mapping) and isinstance(r.get("rule"), str):
            since = r.get("since")
            rules[r["rule"]] = (
                str(r.get("status")),
                parse_time(since) if isinstance(since, str) else None,
            )
    return PreviousResult(at, rules)


async def _devices(
    conn: Any,
    config: SiteConfig,
    t: datetime,
    live: bool,
    snap_facts: Mapping[str, Any],
    snap_at: datetime | None,
) -> dict[str, DeviceFacts]:
    index = SiteIndex(config)
    ids = list(index.devices)
    window_start = t - AVAILABILITY_WINDOW

    # The state each device was in when the window opened, then every change inside it.
    last_before = (
        select(DeviceStateChange.device_id, func.max(DeviceStateChange.id).label("mid"))
        .where(DeviceStateChange.at <= window_start)
        .group_by(DeviceStateChange.device_id)
        .subquery()
    )
    opening = (
        await conn.execute(
            select(DeviceStateChange).join(last_before, DeviceStateChange.id == last_before.c.mid)
        )
    ).all()
    timelines: dict[str, list[tuple[datetime, str, str]]] = {}
    for row in opening:
        timelines.setdefault(row.device_id, []).append((_utc(row.at), row.state, row.reason))
    changes = (
        await conn.execute(
            select(DeviceStateChange)
            .where(DeviceStateChange.at > window_start, DeviceStateChange.at <= t)
            .order_by(DeviceStateChange.at, DeviceStateChange.id)
        )
    ).all()
    for row in changes:
        timelines.setdefault(row.device_id, []).append((_utc(row.at), row.state, row.reason))

    current: dict[str, Any] = {}
    if live:
        current = {r.device_id: r for r in (await conn.execute(select(DeviceState))).all()}

    last_tests = {
        dev: _aware(when)
        for dev, when in (
            await conn.execute(
                select(Event.device_id, func.max(Event.received_at))
                .where(
                    Event.received_at <= t,
                    or_(Event.kind.in_(TEST_KINDS), Event.category == "alarm"),
                )
                .group_by(Event.device_id)
            )
        ).all()
        if dev is not None
    }

    snap_devices = snap_facts.get("devices", {}) if isinstance(snap_facts, Mapping) else {}
    out: dict[str, DeviceFacts] = {}
    for dev_id in ids:
        info = index.devices[dev_id]
        timeline = timelines.get(dev_id, [])
        availability, known_s, hist_state, hist_since, hist_reason = _walk(
            timeline, window_start, t
        )
        state, since, reason = hist_state, hist_since, hist_reason
        last_seen: datetime | None = None
        detail: Mapping[str, Any] | None = None
        detail_at: datetime | None = None
        row = current.get(dev_id)
        if row is not None:
            state, since, reason = row.state, _aware(row.since), row.reason
            last_seen = _aware(row.last_seen)
            detail = {k: v for k, v in (row.detail or {}).items() if k in DETAIL_KEYS}
            detail_at = t
        elif not live:
            snap = snap_devices.get(dev_id) if isinstance(snap_devices, Mapping) else None
            if isinstance(snap, Mapping):
                d = snap.get("detail")
                detail = dict(d) if isinstance(d, Mapping) else None
                ls = snap.get("last_seen")
                last_seen = parse_time(ls) if isinstance(ls, str) else None
                detail_at = snap_at
        loc = info.location
        out[dev_id] = DeviceFacts(
            id=dev_id,
            type=info.type,
            name=info.name,
            role=loc.role if loc else None,
            zone=loc.zone if loc else None,
            floor=loc.floor if loc else None,
            required=info.required,
            parent=info.parent,
            state=state if state in ("online", "degraded", "offline") else "unknown",
            since=since,
            reason=reason,
            last_seen=last_seen,
            detail=detail,
            detail_at=detail_at,
            availability=availability,
            known_s=known_s,
            last_test_at=last_tests.get(dev_id),
        )
    return out


def _walk(
    timeline: list[tuple[datetime, str, str]], start: datetime, end: datetime
) -> tuple[float | None, float, str, datetime | None, str]:
    """Availability over [start, end] and the state at ``end`` with the start of its run."""
    up = down = 0.0
    state, since, reason = "unknown", None, ""
    cursor = start
    for at, new_state, new_reason in timeline:
        at_c = max(at, start)
        span = (at_c - cursor).total_seconds()
        if state in UP_STATES:
            up += span
        elif state == "offline":
            down += span
        cursor = at_c
        if new_state != state:
            since = at
        state, reason = new_state, new_reason
    span = (end - cursor).total_seconds()
    if state in UP_STATES:
        up += span
    elif state == "offline":
        down += span
    known = up + down
    return (up / known if known > 0 else None), known, state, since, reason


def measure_days(config: SiteConfig) -> int:
    """How far back events are loaded: the longest window any rule looks at."""
    return max(MEASURE_DAYS, config.compliance.broadcast_test_days)


async def _events(conn: Any, t: datetime, days: int) -> tuple[list[EventFacts], list[LinkageFacts]]:
    start = t - timedelta(days=days)
    rows = (
        await conn.execute(
            select(
                Event.event_id,
                Event.kind,
                Event.category,
                Event.priority,
                Event.device_id,
                Event.received_at,
                Event.first_published_at,
                Event.state,
                Event.state_at,
                Event.state_via,
                Event.test_mode,
                Event.source,
            )
            .where(
                Event.received_at > start,
                Event.received_at <= t,
                or_(Event.category == "alarm", Event.kind.in_(TEST_KINDS)),
            )
            .order_by(Event.received_at)
        )
    ).all()
    updates = (
        await conn.execute(
            select(
                EventUpdate.event_id,
                EventUpdate.created_at,
                EventUpdate.message["state"],
                EventUpdate.message["linkage"],
            )
            .where(EventUpdate.created_at > start, EventUpdate.created_at <= t)
            .order_by(EventUpdate.created_at, EventUpdate.id)
        )
    ).all()
    acks: dict[str, tuple[datetime, str | None]] = {}
    linkage: list[LinkageFacts] = []
    for event_id, created_at, state, items in updates:
        created = _aware(created_at)
        assert created is not None
        if (
            isinstance(state, Mapping)
            and state.get("state") in ("acknowledged", "closed")
            and event_id not in acks
        ):
            via = state.get("via")
            acks[event_id] = (created, via if isinstance(via, str) else None)
        if isinstance(items, list):
            for item in items:
                if not isinstance(item, Mapping):
                    continue
                elapsed = item.get("elapsed_ms")
                linkage.append(
                    LinkageFacts(
                        event_id=event_id,
                        type=str(item.get("type", "")),
                        target=str(item.get("target", "")),
                        outcome=str(item.get("outcome", "")),
                        elapsed_ms=float(elapsed) if isinstance(elapsed, int | float) else None,
                        at=created,
                    )
                )
    events: list[EventFacts] = []
    for r in rows:
        published = _aware(r.first_published_at)
        if published is not None and published > t:
            published = None
        ack = acks.get(r.event_id)
        if ack is None and r.state in ("acknowledged", "closed"):
            # No update row (older data): the event row's own time is the best we have.
            state_at = _aware(r.state_at)
            if state_at is not None and state_at <= t:
                ack = (state_at, r.state_via)
        received = _aware(r.received_at)
        assert received is not None
        events.append(
            EventFacts(
                event_id=r.event_id,
                kind=r.kind,
                category=r.category,
                priority=r.priority,
                device_id=r.device_id,
                received_at=received,
                published_at=published,
                acked_at=ack[0] if ack else None,
                ack_via=ack[1] if ack else None,
                test_mode=bool(r.test_mode),
                source=r.source or {},
            )
        )
    return events, linkage


async def _records(conn: Any, t: datetime) -> list[RecordFacts]:
    out: list[RecordFacts] = []
    for r in (await conn.execute(select(Record).order_by(Record.at, Record.id))).all():
        detail = r.detail or {}
        entered_raw = detail.get("entered_at")
        at = _aware(r.at)
        assert at is not None
        entered = parse_time(entered_raw) if isinstance(entered_raw, str) else at
        # A record counts from when it was entered, so a past report reads as it did then.
        if entered > t:
            continue
        closed = _aware(r.closed_at)
        out.append(
            RecordFacts(
                id=r.id,
                kind=r.kind,
                at=at,
                title=r.title,
                owner=r.owner,
                due_at=_aware(r.due_at),
                closed_at=closed if closed is not None and closed <= t else None,
                expires_at=_aware(r.expires_at),
                rule_id=r.rule_id,
                created_by=r.created_by,
                detail=detail,
                entered_at=entered,
            )
        )
    return out


class AuditChain:
    """Verifies the audit log's hash chain, continuing where the last call stopped."""

    def __init__(self) -> None:
        self.last_id = 0
        self.head = GENESIS
        self.rows = 0
        self.oldest: datetime | None = None
        self.broken: AuditFacts | None = None

    async def advance(
        self, engine: AsyncEngine, until: datetime | None = None, batch: int = 5000
    ) -> AuditFacts:
        """Verify the rows added since the last call (only those at or before ``until``)."""
        if self.broken is not None:
            return self.broken
        async with engine.connect() as conn:
            while True:
                q = select(AuditLog).where(AuditLog.id > self.last_id)
                rows = (await conn.execute(q.order_by(AuditLog.id).limit(batch))).all()
                if not rows:
                    break
                for r in rows:
                    if until is not None and _utc(r.at) > until:
                        # The chain is walked in id order and stops at the first later row:
                        # skipping it would break the link to the next one.
                        return AuditFacts(self.rows, True, None, "", self.oldest)
                    bad = ""
                    if r.prev_hash != self.head:
                        bad = "previous-hash link does not match the row before"
                    elif r.hash != chain_hash(
                        r.prev_hash, _aware(r.at) or r.at, r.actor, r.action, r.subject, r.detail
                    ):
                        bad = "row content does not match its hash"
                    if bad:
                        self.broken = AuditFacts(self.rows, False, r.id, bad, self.oldest)
                        return self.broken
                    if self.oldest is None:
                        self.oldest = _aware(r.at)
                    self.head = r.hash
                    self.last_id = r.id
                    self.rows += 1
        return AuditFacts(self.rows, True, None, "", self.oldest)


def snapshot_facts(facts: Facts) -> dict[str, Any]:
    """The facts without history, as stored in a compliance snapshot for past reports."""
    devices: dict[str, Any] = {}
    for d in facts.devices.values():
        if d.detail is None and d.last_seen is None:
            continue
        devices[d.id] = {
            "detail": dict(d.detail) if d.detail is not None else None,
            "last_seen": iso(d.last_seen) if d.last_seen else None,
        }
    out: dict[str, Any] = {"devices": devices}
    if facts.link is not None:
        out["link"] = facts.link.to_json()
    return out


__all__ = [
    "AuditChain",
    "AuditFacts",
    "DeviceFacts",
    "EventFacts",
    "Facts",
    "LinkFacts",
    "LinkStatus",
    "LinkageFacts",
    "PreviousResult",
    "RecordFacts",
    "load_facts",
    "previous_from_body",
    "snapshot_facts",
]
