"""Online inspections (网上巡查), the officer's side: start one (the ``inspect`` command),
record a finding per checklist item, complete it; an inspection the hub did not answer in
time is recorded as such — a finding of its own. The hub's answer is written by the
workers (patrol.hub_answers). Every step is audited.

An inspection's ``state``: ``waiting`` → ``answered`` (checklist) | ``refused`` (the hub
said why) | ``no_answer`` (nothing within ``answer_timeout_s``) → ``completed``.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from nats.aio.client import Client as NatsClient
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from patrol.clock import now_utc
from patrol.commands import CommandRefused, send_command
from patrol.config import Inspections, valid_site_id
from patrol.models import AuditRow, InspectionItemRow, InspectionRow, MallRow, utc
from patrol.queries import iso
from patrol.schedule import CST
from patrol.store import PatrolStore

FINDINGS = ("pass", "problem")
OPEN_FOR_FINDINGS = ("answered", "no_answer", "refused")
INSPECTION_STATES = ("waiting", "answered", "refused", "no_answer", "completed")
MAX_NOTE = 2000
NO_ANSWER_ITEM = "hub:no_answer"


def new_inspection_id(now: datetime) -> str:
    return f"XC-{now:%Y%m%d}-{secrets.token_hex(4)}"


async def _audit(
    conn: AsyncConnection, at: datetime, actor: str, action: str, target: str, **detail: Any
) -> None:
    await conn.execute(
        insert(AuditRow).values(
            at=at, actor=actor[:80], action=action, target=target[:128], detail=detail
        )
    )


async def start_inspection(
    store: PatrolStore,
    nc: NatsClient,
    cfg: Inspections,
    site_id: str,
    *,
    officer: str,
    officer_user: str = "",
    known_sites: frozenset[str] = frozenset(),
    schedule_key: str | None = None,
) -> str:
    """Send ``inspect`` to the mall and record the inspection as ``waiting``; returns its
    id. A mall never heard of and not configured is refused (``not_found``); a mall with an
    inspection still waiting for its answer too (``conflict``)."""
    if not valid_site_id(site_id):
        raise CommandRefused("invalid", "invalid site id", "商场编号无效")
    now = now_utc()
    inspection_id = new_inspection_id(now)

    async def alongside(conn: AsyncConnection, request_id: str, at: datetime) -> None:
        known = (
            site_id in known_sites
            or (
                await conn.execute(select(MallRow.site_id).where(MallRow.site_id == site_id))
            ).first()
            is not None
        )
        if not known:
            raise CommandRefused("not_found", f"there is no mall {site_id}", f"没有商场 {site_id}")
        waiting = (
            await conn.execute(
                select(InspectionRow.inspection_id).where(
                    InspectionRow.site_id == site_id, InspectionRow.state == "waiting"
                )
            )
        ).first()
        if waiting is not None:
            raise CommandRefused(
                "conflict",
                f"inspection {waiting[0]} of this mall is still waiting for its answer",
                f"该商场的巡查 {waiting[0]} 仍在等待应答",
            )
        await conn.execute(
            insert(InspectionRow).values(
                inspection_id=inspection_id,
                site_id=site_id,
                request_id=request_id,
                state="waiting",
                officer=officer[:64],
                officer_user=officer_user[:64],
                scheduled=schedule_key is not None,
                schedule_key=schedule_key,
                started_at=at,
                due_at=at + timedelta(seconds=cfg.answer_timeout_s),
                late=False,
                completed_by="",
            )
        )
        await _audit(
            conn,
            at,
            officer_user or officer,
            "inspection.started",
            f"inspection:{inspection_id}",
            site_id=site_id,
            request_id=request_id,
            scheduled=schedule_key is not None,
        )

    who: dict[str, str] = {"name": officer[:128]}
    if officer_user:
        who["id"] = officer_user[:128]
    fields = {"site_id": site_id, "officer": who, "timeout_s": cfg.hub_timeout_s}
    await send_command(
        store, nc, site_id, "inspect", fields, officer_user or officer, alongside=alongside
    )
    return inspection_id


async def expire_unanswered(store: PatrolStore, now: datetime | None = None) -> list[str]:
    """Inspections whose hub did not answer in time become ``no_answer``, with the finding
    "the mall's hub did not answer" recorded as a problem."""
    now = now or now_utc()
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    InspectionRow.inspection_id, InspectionRow.started_at, InspectionRow.due_at
                ).where(InspectionRow.state == "waiting", InspectionRow.due_at <= now)
            )
        ).all()
    done: list[str] = []
    for inspection_id, started, due in rows:
        seconds = int(((utc(due) or now) - (utc(started) or now)).total_seconds())
        async with store.serial(), store.engine.begin() as conn:
            res = await conn.execute(
                update(InspectionRow)
                .where(
                    InspectionRow.inspection_id == inspection_id,
                    InspectionRow.state == "waiting",
                )
                .values(state="no_answer")
            )
            if not res.rowcount:
                continue  # answered meanwhile, or another process did it
            await conn.execute(
                insert(InspectionItemRow).values(
                    inspection_id=inspection_id,
                    item_id=NO_ANSWER_ITEM,
                    n=0,
                    kind="hub",
                    title="商场平台未应答",
                    status="no_answer",
                    detail={"timeout_s": seconds},
                    sha256="",
                    content_type="",
                    finding="problem",
                    note=f"商场平台未在 {seconds} 秒内应答巡查指令",
                    found_by="系统",
                    found_at=now,
                )
            )
            await _audit(
                conn,
                now,
                "system",
                "inspection.no_answer",
                f"inspection:{inspection_id}",
                timeout_s=seconds,
            )
        done.append(inspection_id)
    return done


async def _inspection_state(conn: AsyncConnection, inspection_id: str) -> str:
    state = (
        await conn.execute(
            select(InspectionRow.state).where(InspectionRow.inspection_id == inspection_id)
        )
    ).scalar_one_or_none()
    if state is None:
        raise CommandRefused(
            "not_found", f"there is no inspection {inspection_id}", f"没有巡查 {inspection_id}"
        )
    return str(state)


async def record_finding(
    store: PatrolStore,
    inspection_id: str,
    item_id: str,
    finding: str,
    note: str,
    *,
    officer: str,
    officer_user: str,
) -> None:
    """The officer's finding on one item: ``pass``, or ``problem`` with a note."""
    if finding not in FINDINGS:
        raise CommandRefused("invalid", "finding is pass or problem", "检查结论须为合格或存在问题")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise CommandRefused("invalid", f"the note has at most {MAX_NOTE} characters")
    if finding == "problem" and not note:
        raise CommandRefused(
            "invalid", "a problem needs a note saying what is wrong", "存在问题时须填写问题说明"
        )
    now = now_utc()
    async with store.serial(), store.engine.begin() as conn:
        state = await _inspection_state(conn, inspection_id)
        if state not in OPEN_FOR_FINDINGS:
            raise CommandRefused(
                "conflict", f"the inspection is {state}: no findings now", "该巡查当前不能记录结论"
            )
        res = await conn.execute(
            update(InspectionItemRow)
            .where(
                InspectionItemRow.inspection_id == inspection_id,
                InspectionItemRow.item_id == item_id,
            )
            .values(finding=finding, note=note, found_by=officer[:64], found_at=now)
        )
        if not res.rowcount:
            raise CommandRefused(
                "not_found", f"the inspection has no item {item_id}", f"巡查中没有检查项 {item_id}"
            )
        await _audit(
            conn,
            now,
            officer_user or officer,
            "inspection.finding",
            f"inspection:{inspection_id}",
            item_id=item_id,
            finding=finding,
            note=note,
        )


async def complete_inspection(
    store: PatrolStore,
    inspection_id: str,
    *,
    officer: str,
    officer_user: str,
    rest: str | None = None,
) -> None:
    """Sign the inspection off. Every item needs a finding; ``rest="pass"`` records the
    items still without one as passed (said so in the audit)."""
    if rest not in (None, "pass"):
        raise CommandRefused("invalid", "rest is pass or absent")
    now = now_utc()
    async with store.serial(), store.engine.begin() as conn:
        state = await _inspection_state(conn, inspection_id)
        if state not in OPEN_FOR_FINDINGS:
            raise CommandRefused(
                "conflict",
                f"the inspection is {state}: it cannot be completed",
                "该巡查当前不能完成",
            )
        open_items = (
            await conn.execute(
                select(func.count()).where(
                    InspectionItemRow.inspection_id == inspection_id,
                    InspectionItemRow.finding.is_(None),
                )
            )
        ).scalar_one()
        if open_items and rest is None:
            raise CommandRefused(
                "conflict",
                f"{open_items} items have no finding yet",
                f"还有 {open_items} 个检查项未记录结论",
            )
        if open_items:
            await conn.execute(
                update(InspectionItemRow)
                .where(
                    InspectionItemRow.inspection_id == inspection_id,
                    InspectionItemRow.finding.is_(None),
                )
                .values(finding="pass", found_by=officer[:64], found_at=now)
            )
        await conn.execute(
            update(InspectionRow)
            .where(InspectionRow.inspection_id == inspection_id)
            .values(state="completed", completed_at=now, completed_by=officer[:64])
        )
        await _audit(
            conn,
            now,
            officer_user or officer,
            "inspection.completed",
            f"inspection:{inspection_id}",
            passed_rest=int(open_items),
        )


# --- reading -----------------------------------------------------------------------------


def _item(row: Any) -> dict[str, Any]:
    return {
        "item_id": row.item_id,
        "n": row.n,
        "kind": row.kind,
        "title": row.title,
        "status": row.status,
        "detail": row.detail,
        "sha256": row.sha256 or None,
        "taken_at": iso(row.taken_at),
        "content_type": row.content_type or None,
        "has_picture": bool(row.has_picture),
        "picture_error": row.picture_error or None,
        "finding": row.finding,
        "note": row.note,
        "found_by": row.found_by or None,
        "found_at": iso(row.found_at),
    }


def _inspection(row: InspectionRow, names: dict[str, tuple[str, str]]) -> dict[str, Any]:
    name, district = names.get(row.site_id, ("", ""))
    return {
        "inspection_id": row.inspection_id,
        "site_id": row.site_id,
        "mall": name,
        "district": district,
        "request_id": row.request_id,
        "state": row.state,
        "officer": row.officer,
        "scheduled": row.scheduled,
        "started_at": iso(row.started_at),
        "due_at": iso(row.due_at),
        "answered_at": iso(row.answered_at),
        "late": row.late,
        "hub_inspection_id": row.hub_inspection_id or None,
        "hub_started_at": iso(row.hub_started_at),
        "hub_finished_at": iso(row.hub_finished_at),
        "compliance": row.compliance,
        "error": row.error,
        "completed_at": iso(row.completed_at),
        "completed_by": row.completed_by or None,
    }


async def mall_names(
    engine: AsyncEngine, registry: dict[str, tuple[str, str]]
) -> dict[str, tuple[str, str]]:
    """Name and district of every mall: the configuration wins over what hubs said."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(MallRow.site_id, MallRow.name, MallRow.district))).all()
    out = {r.site_id: (r.name, r.district) for r in rows}
    out.update(registry)
    return out


ITEM_COLUMNS = (
    InspectionItemRow.item_id,
    InspectionItemRow.n,
    InspectionItemRow.kind,
    InspectionItemRow.title,
    InspectionItemRow.status,
    InspectionItemRow.detail,
    InspectionItemRow.sha256,
    InspectionItemRow.taken_at,
    InspectionItemRow.content_type,
    InspectionItemRow.picture.is_not(None).label("has_picture"),
    InspectionItemRow.picture_error,
    InspectionItemRow.finding,
    InspectionItemRow.note,
    InspectionItemRow.found_by,
    InspectionItemRow.found_at,
)


async def get_inspection(
    engine: AsyncEngine, inspection_id: str, registry: dict[str, tuple[str, str]]
) -> dict[str, Any] | None:
    """An inspection with its checklist (items in the hub's order, the no-answer finding
    first), or None."""
    async with AsyncSession(engine) as session:
        row = (
            await session.execute(
                select(InspectionRow).where(InspectionRow.inspection_id == inspection_id)
            )
        ).scalar_one_or_none()
    if row is None:
        return None
    async with engine.connect() as conn:
        items = (
            await conn.execute(
                select(*ITEM_COLUMNS)
                .where(InspectionItemRow.inspection_id == inspection_id)
                .order_by(InspectionItemRow.n)
            )
        ).all()
    names = await mall_names(engine, registry)
    out = _inspection(row, names)
    out["items"] = [_item(i) for i in items]
    out["counts"] = {
        "items": len(items),
        "pass": sum(1 for i in items if i.finding == "pass"),
        "problem": sum(1 for i in items if i.finding == "problem"),
        "open": sum(1 for i in items if i.finding is None),
    }
    return out


async def get_picture(
    engine: AsyncEngine, inspection_id: str, item_id: str
) -> tuple[bytes, str] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(InspectionItemRow.picture, InspectionItemRow.content_type).where(
                    InspectionItemRow.inspection_id == inspection_id,
                    InspectionItemRow.item_id == item_id,
                )
            )
        ).one_or_none()
    if row is None or row.picture is None:
        return None
    return bytes(row.picture), row.content_type or "application/octet-stream"


async def list_inspections(
    engine: AsyncEngine,
    registry: dict[str, tuple[str, str]],
    *,
    site_id: str | None = None,
    state: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Newest first."""
    q = select(InspectionRow).order_by(InspectionRow.started_at.desc()).limit(limit)
    if site_id is not None:
        q = q.where(InspectionRow.site_id == site_id)
    if state is not None:
        q = q.where(InspectionRow.state == state)
    async with AsyncSession(engine) as session:
        rows = (await session.execute(q)).scalars().all()
    async with engine.connect() as conn:
        problems = {
            str(c[0]): int(c[1])
            for c in (
                await conn.execute(
                    select(InspectionItemRow.inspection_id, func.count())
                    .where(
                        InspectionItemRow.inspection_id.in_([r.inspection_id for r in rows]),
                        InspectionItemRow.finding == "problem",
                    )
                    .group_by(InspectionItemRow.inspection_id)
                )
            )
        }
    names = await mall_names(engine, registry)
    out = []
    for r in rows:
        d = _inspection(r, names)
        d["problems"] = int(problems.get(r.inspection_id, 0))
        out.append(d)
    return out


async def results(
    engine: AsyncEngine,
    registry: dict[str, tuple[str, str]],
    *,
    by: str = "mall",
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Inspections per mall (or district) and month (China time): how many, completed, not
    answered, and problems found; newest month first."""
    q = select(
        InspectionRow.inspection_id, InspectionRow.site_id, InspectionRow.state,
        InspectionRow.started_at,
    )  # fmt: skip
    if since is not None:
        q = q.where(InspectionRow.started_at >= since)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
        problems = {
            str(c[0]): int(c[1])
            for c in (
                await conn.execute(
                    select(InspectionItemRow.inspection_id, func.count())
                    .where(InspectionItemRow.finding == "problem")
                    .group_by(InspectionItemRow.inspection_id)
                )
            )
        }
        silent = set(
            (
                await conn.execute(
                    select(InspectionItemRow.inspection_id).where(
                        InspectionItemRow.item_id == NO_ANSWER_ITEM
                    )
                )
            ).scalars()
        )
    names = await mall_names(engine, registry)
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        started = utc(r.started_at)
        month = f"{started.astimezone(CST):%Y-%m}" if started else ""
        name, district = names.get(r.site_id, ("", ""))
        key = r.site_id if by == "mall" else district
        cell = table.setdefault(
            (month, key),
            {
                "period": month,
                "site_id": r.site_id if by == "mall" else None,
                "mall": name if by == "mall" else None,
                "district": district,
                "inspections": 0,
                "completed": 0,
                "no_answer": 0,
                "problems": 0,
                "with_problems": 0,
            },
        )
        cell["inspections"] += 1
        cell["completed"] += r.state == "completed"
        cell["no_answer"] += r.inspection_id in silent
        n = int(problems.get(r.inspection_id, 0))
        cell["problems"] += n
        cell["with_problems"] += n > 0
    return sorted(
        table.values(),
        key=lambda c: (c["period"], c["district"] or "", c["site_id"] or ""),
        reverse=True,
    )
