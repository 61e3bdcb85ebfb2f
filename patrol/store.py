"""Writing what the hubs send into the patrol store, a batch per transaction.

Every write is idempotent, so a redelivered message (JetStream delivers at least once) or
two workers racing change nothing twice: events are inserted once per ``event_id`` (a
repeat only counts a delivery), and retained-style facts (status, device availability,
compliance) are applied only when newer than what is stored — newer by their position in
the stream, the one order every worker agrees on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from patrol.clock import now_utc, parse_ts
from patrol.config import valid_site_id
from patrol.hub_answers import (
    apply_inspect_answer,
    apply_notice,
    apply_notice_response,
    check_notice,
    slim_response,
)
from patrol.models import CommandRow, DeviceRow, EventRow, MallRow

log = logging.getLogger(__name__)

INSERT_CHUNK = 200
"""Events per INSERT statement (SQLite allows 32766 bound values; an event has 20)."""
INT32_MAX = 2**31 - 1
"""The largest value of an ``Integer`` column on PostgreSQL."""
KINDS = ("status", "event", "update", "availability", "compliance", "response", "notice")


@dataclass(slots=True)
class Incoming:
    """One message from the stream, decoded: ``kind`` is one of ``KINDS``."""

    site: str
    kind: str
    body: dict[str, Any]
    seq: int
    """Stream sequence: the order of arrival at the cluster."""
    at: datetime
    """When the cluster stored it."""
    key: str = ""
    """The device id (availability), request id (response) or notice id (notice)."""


def classify(subject: str, body: object, seq: int, at: datetime) -> Incoming | str | None:
    """An Incoming for a hub's message on ``subject``; None for what the platform itself
    publishes (receipts, commands); a string saying why a message is refused."""
    parts = subject.split(".")
    if len(parts) < 4 or parts[0] != "mallhub" or parts[1] != "v1":
        return "not a mallhub v1 subject"
    site, rest = parts[2], parts[3:]
    if rest[0] in ("receipts", "commands"):
        return None
    if not valid_site_id(site):
        return "invalid site id"
    if not isinstance(body, dict):
        return "payload is not a JSON object"
    if "site_id" in body and body["site_id"] != site:
        return "site_id in the payload differs from the topic"
    named = body.get("site")
    if isinstance(named, dict) and "id" in named and named["id"] != site:
        return "site.id in the payload differs from the topic"
    key = ""
    if rest == ["status"]:
        kind = "status"
    elif rest[0] == "events" and len(rest) == 2:
        kind = "event"
        s = body.get("site")
        if (
            not isinstance(s, dict)
            or s.get("id") != site
            or not isinstance(body.get("event_id"), str)
        ):
            return "event without event_id or for another site"
    elif rest == ["updates"]:
        kind = "update"
    elif rest[0] == "devices" and len(rest) == 3 and rest[2] == "availability":
        kind, key = "availability", rest[1]
    elif rest == ["compliance"]:
        kind = "compliance"
    elif rest[0] == "responses" and len(rest) == 2:
        kind, key = "response", rest[1]
    elif rest[0] == "notices" and len(rest) == 2:
        kind, key = "notice", rest[1]
        problem = check_notice(site, key, body)
        if problem is not None:
            return problem
    else:
        return "unknown topic"
    return Incoming(site, kind, body, seq, at, key)


@dataclass(slots=True)
class BatchOutcome:
    new_events: list[EventRow] = field(default_factory=list)
    duplicates: int = 0
    receipts: list[tuple[str, str]] = field(default_factory=list)
    """(site, event_id) of every event in the batch, new or repeated: each gets a receipt."""
    retry: list[int] = field(default_factory=list)
    """Indexes of updates for events not stored yet (another worker has them)."""
    state_changes: list[dict[str, Any]] = field(default_factory=list)
    malls_changed: set[str] = field(default_factory=set)
    responses: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    """Notices whose state changed."""
    refused: list[str] = field(default_factory=list)
    """Why messages of the batch were refused by the store (a reason per message)."""


def merge_outcome(into: BatchOutcome, one: BatchOutcome, index: int) -> None:
    """Add the outcome of the single message at ``index`` of a batch to ``into``."""
    into.new_events += one.new_events
    into.duplicates += one.duplicates
    into.receipts += one.receipts
    into.retry += [index] if one.retry else []
    into.state_changes += one.state_changes
    into.malls_changed |= one.malls_changed
    into.responses += one.responses
    into.notices += one.notices
    into.refused += one.refused


def _insert(conn: AsyncConnection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _text(obj: object, lang: str) -> str:
    if isinstance(obj, dict):
        v = obj.get(lang)
        return v[:300] if isinstance(v, str) else ""
    return ""


def _event_row(m: Incoming, stored_at: datetime) -> dict[str, Any] | None:
    b = m.body
    event_id = b.get("event_id")
    device = b.get("device") if isinstance(b.get("device"), dict) else {}
    occurred = parse_ts(b.get("occurred_at"))
    received = parse_ts(b.get("received_at"))
    priority = b.get("priority")
    seq = b.get("seq")
    if (
        not isinstance(event_id, str)
        or not 1 <= len(event_id) <= 64
        or occurred is None
        or received is None
        or not isinstance(priority, int)
        or isinstance(priority, bool)
        or not 0 <= priority <= 9
        or not isinstance(seq, int)
        or isinstance(seq, bool)
        or not 0 <= seq <= INT32_MAX
    ):
        return None
    return {
        "event_id": event_id,
        "site_id": m.site,
        "seq": seq,
        "kind": str(b.get("kind", ""))[:64],
        "category": str(b.get("category", ""))[:16],
        "priority": priority,
        "device_id": str(device.get("id", ""))[:64] if isinstance(device, dict) else "",
        "text_zh": _text(b.get("text"), "zh"),
        "text_en": _text(b.get("text"), "en"),
        "occurred_at": occurred,
        "hub_received_at": received,
        "stored_at": stored_at,
        "state": "open",
        "ack_by": "",
        "ack_at": None,
        "receipt_sent_at": None,
        "deliveries": 1,
        "test": bool(b.get("test")),
        "body": b,
    }


class PatrolStore:
    """Writes batches; on SQLite one at a time (one writer), on PostgreSQL concurrently."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._serial = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def serial(self) -> AsyncIterator[None]:
        """Around a write transaction: SQLite has one writer at a time."""
        if self._serial is None:
            yield
        else:
            async with self._serial:
                yield

    async def write(self, items: Sequence[Incoming]) -> BatchOutcome:
        async with self.serial():
            return await self._write(items)

    async def _write(self, items: Sequence[Incoming]) -> BatchOutcome:
        out = BatchOutcome()
        now = now_utc()
        async with self.engine.begin() as conn:
            sites = sorted({m.site for m in items})
            if sites:
                names: dict[str, str] = {}
                for m in items:
                    s = m.body.get("site") if m.kind == "event" else None
                    if isinstance(s, dict) and isinstance(s.get("name"), str):
                        names[m.site] = s["name"][:200]
                await conn.execute(
                    _insert(conn, MallRow).on_conflict_do_nothing(),
                    [{"site_id": s, "name": names.get(s, "")} for s in sites],
                )
            await self._events(conn, [m for m in items if m.kind == "event"], now, out)
            for i, m in enumerate(items):
                if m.kind == "status":
                    await self._status(conn, m, out)
                elif m.kind == "compliance":
                    await self._compliance(conn, m, out)
                elif m.kind == "update" and not await self._update(conn, m, out):
                    out.retry.append(i)
                elif m.kind == "response":
                    await self._response(conn, m, now, out)
                elif m.kind == "notice" and await apply_notice(conn, m.site, m.body, now):
                    out.notices.append(m.key)
                    out.malls_changed.add(m.site)
            avail = [m for m in items if m.kind == "availability"]
            if avail:
                await self._availability(conn, avail, out)
        return out

    async def _events(
        self, conn: AsyncConnection, events: list[Incoming], now: datetime, out: BatchOutcome
    ) -> None:
        rows: dict[str, dict[str, Any]] = {}
        repeats: dict[str, int] = {}
        for m in events:
            row = _event_row(m, now)
            if row is None:
                log.warning("refused an event from %s: missing or malformed fields", m.site)
                out.refused.append("event with missing or malformed fields")
                continue
            out.receipts.append((m.site, row["event_id"]))
            if row["event_id"] in rows:
                repeats[row["event_id"]] = repeats.get(row["event_id"], 0) + 1
            else:
                rows[row["event_id"]] = row
        if not rows:
            return
        inserted: set[str] = set()
        values = list(rows.values())
        for i in range(0, len(values), INSERT_CHUNK):
            # One multi-row INSERT per chunk: RETURNING names the rows that were new.
            stmt = (
                _insert(conn, EventRow)
                .values(values[i : i + INSERT_CHUNK])
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(EventRow.event_id)
            )
            inserted.update((await conn.execute(stmt)).scalars())
        for event_id in rows.keys() - inserted:
            repeats[event_id] = repeats.get(event_id, 0) + 1
        if repeats:
            await conn.execute(
                update(EventRow)
                .where(EventRow.event_id == bindparam("eid"))
                .values(deliveries=EventRow.deliveries + bindparam("n")),
                [{"eid": e, "n": n} for e, n in repeats.items()],
            )
        out.duplicates += sum(repeats.values())
        seqs: dict[str, int] = {}
        for event_id in inserted:
            row = rows[event_id]
            out.new_events.append(EventRow(**row))
            seqs[row["site_id"]] = max(seqs.get(row["site_id"], 0), row["seq"])
            out.malls_changed.add(row["site_id"])
        for site, seq in sorted(seqs.items()):  # one lock order for every worker
            await conn.execute(
                update(MallRow)
                .where(MallRow.site_id == site, MallRow.last_seq < seq)
                .values(last_seq=seq)
            )

    async def _status(self, conn: AsyncConnection, m: Incoming, out: BatchOutcome) -> None:
        state = m.body.get("state")
        if state not in ("online", "offline"):
            return
        reason = str(m.body.get("reason", ""))[:200]
        # A retained copy read at start (seq 0) only fills in what the stream never said.
        newer = MallRow.status_seq_order < m.seq if m.seq else MallRow.status_seq_order == 0
        values: dict[str, Any] = {
            "state": state,
            "status_ts": m.at,
            "status_seq_order": m.seq,
            "hub_version": str(m.body.get("version", ""))[:32],
            "offline_reason": reason if state == "offline" else "",
            "offline_since": (
                case(
                    (
                        and_(MallRow.state == "offline", MallRow.offline_since.is_not(None)),
                        MallRow.offline_since,
                    ),
                    else_=m.at,
                )
                if state == "offline"
                else None
            ),
        }
        res = await conn.execute(
            update(MallRow).where(MallRow.site_id == m.site, newer).values(**values)
        )
        if res.rowcount:
            out.malls_changed.add(m.site)

    async def _compliance(self, conn: AsyncConnection, m: Incoming, out: BatchOutcome) -> None:
        at = parse_ts(m.body.get("evaluated_at"))
        overall = m.body.get("overall")
        if at is None or overall not in ("compliant", "non_compliant", "unknown"):
            return
        res = await conn.execute(
            update(MallRow)
            .where(
                MallRow.site_id == m.site,
                or_(MallRow.compliance_at.is_(None), MallRow.compliance_at <= at),
            )
            .values(compliance=m.body, compliance_overall=overall, compliance_at=at)
        )
        if res.rowcount:
            out.malls_changed.add(m.site)

    async def _update(self, conn: AsyncConnection, m: Incoming, out: BatchOutcome) -> bool:
        """Applies a state change; False when the event is not stored (yet)."""
        event_id = m.body.get("event_id")
        if not isinstance(event_id, str):
            return True
        state = m.body.get("state")
        if not isinstance(state, dict) or state.get("state") not in ("acknowledged", "closed"):
            return True  # attachments, linkage, escalation: kept in the stream only
        new = state["state"]
        at = parse_ts(state.get("at")) or m.at
        by = str(state.get("by", ""))[:64]
        exists = (
            await conn.execute(
                select(EventRow.state).where(
                    EventRow.event_id == event_id, EventRow.site_id == m.site
                )
            )
        ).scalar_one_or_none()
        if exists is None:
            return False
        if exists == "closed" or (exists == "acknowledged" and new == "acknowledged"):
            return True
        await conn.execute(
            update(EventRow)
            .where(EventRow.event_id == event_id)
            .values(state=new, ack_by=by, ack_at=at)
        )
        out.state_changes.append(
            {"event_id": event_id, "site_id": m.site, "state": new, "by": by, "at": at}
        )
        out.malls_changed.add(m.site)
        return True

    async def _response(
        self, conn: AsyncConnection, m: Incoming, now: datetime, out: BatchOutcome
    ) -> None:
        ok = m.body.get("ok")
        sent = (
            await conn.execute(
                select(CommandRow.name, CommandRow.body, CommandRow.ok).where(
                    CommandRow.request_id == m.key, CommandRow.site_id == m.site
                )
            )
        ).one_or_none()
        await conn.execute(
            update(CommandRow)
            .where(CommandRow.request_id == m.key, CommandRow.site_id == m.site)
            .values(ok=bool(ok), response=slim_response(m.body), responded_at=now)
        )
        if sent is not None and sent.name == "inspect":
            await apply_inspect_answer(conn, m.site, m.key, m.body, now)
        elif sent is not None and sent.name == "notice" and sent.ok is None:
            await apply_notice_response(conn, sent.body, m.body, now)
        out.responses.append({"site_id": m.site, "request_id": m.key, "ok": bool(ok)})

    async def _availability(
        self, conn: AsyncConnection, items: list[Incoming], out: BatchOutcome
    ) -> None:
        latest: dict[tuple[str, str], Incoming] = {}
        for m in items:
            if m.body.get("state") in ("online", "degraded", "offline", "unknown"):
                # Keyed as stored (64 characters): one row per device in one statement.
                latest[(m.site, m.key[:64])] = m
        if not latest:
            return
        stmt = _insert(conn, DeviceRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site_id", "device_id"],
            set_={
                "device_type": stmt.excluded.device_type,
                "state": stmt.excluded.state,
                "since": stmt.excluded.since,
                "ts": stmt.excluded.ts,
                "seq_order": stmt.excluded.seq_order,
            },
            where=or_(
                DeviceRow.seq_order < stmt.excluded.seq_order,
                and_(DeviceRow.seq_order == 0, stmt.excluded.seq_order == 0),
            ),
        )
        await conn.execute(
            stmt,
            [
                {
                    "site_id": site,
                    "device_id": dev[:64],
                    "device_type": str(m.body.get("device_type", ""))[:32],
                    "state": m.body["state"],
                    "since": parse_ts(m.body.get("since")),
                    "ts": m.at,
                    "seq_order": m.seq,
                }
                for (site, dev), m in latest.items()
            ],
        )
        out.malls_changed.update(site for site, _ in latest)

    async def mark_receipts(self, event_ids: Sequence[str], at: datetime) -> None:
        if event_ids:
            async with self.serial():
                await self._mark(event_ids, at)

    async def _mark(self, event_ids: Sequence[str], at: datetime) -> None:
        async with self.engine.begin() as conn:
            for i in range(0, len(event_ids), 500):
                await conn.execute(
                    update(EventRow)
                    .where(
                        EventRow.event_id.in_(list(event_ids[i : i + 500])),
                        EventRow.receipt_sent_at.is_(None),
                    )
                    .values(receipt_sent_at=at)
                )


async def count_events(engine: AsyncEngine) -> tuple[int, int]:
    """Events stored and repeated deliveries counted."""
    async with engine.connect() as conn:
        n, dup = (
            await conn.execute(
                select(func.count(), func.coalesce(func.sum(EventRow.deliveries - 1), 0))
            )
        ).one()
    return int(n), int(dup)
