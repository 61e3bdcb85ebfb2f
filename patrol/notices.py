"""Rectification notices (整改通知), the officer's side: issue one from a problem finding
(the ``notice`` command, action ``issue``), accept or reject the mall's answer, and escalate
an overdue notice to the issuing officer's supervisor (every supervisor when the officer has
none). The hub's state comes back on the retained
``<p>/notices/<id>`` topic (patrol.hub_answers); what the officer sees is that mirror.

Refused with ``CommandRefused`` and nothing changed: an unknown notice (``not_found``), a
decision on a closed notice or one the hub has not confirmed, a reject without an answer to
reject, a second decision before the hub confirmed the first (``conflict``), a notice or a
decision naming another site than the notice's or the inspection's (``invalid``).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from nats.aio.client import Client as NatsClient
from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from patrol.clock import iso_z, now_utc
from patrol.commands import CommandRefused, send_command
from patrol.config import Inspections
from patrol.inspections import mall_names
from patrol.models import (
    AuditRow,
    InspectionItemRow,
    InspectionRow,
    NoticeEvidenceRow,
    NoticeRow,
    UserRow,
    utc,
)
from patrol.queries import iso
from patrol.store import PatrolStore

MAX_TEXT = 2000
MAX_DEADLINE = timedelta(days=730)
HUB_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
HUB_ITEM = re.compile(r"^[A-Za-z0-9._:/-]{1,160}$")
NOTICE_STATES = ("sent", "refused", "open", "answered", "rejected", "closed")
OPEN_STATES = ("sent", "open", "answered", "rejected")


def new_notice_id(now: datetime) -> str:
    return f"ZG-{now:%Y%m%d}-{secrets.token_hex(3)}"


def _text(value: object, what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise CommandRefused("invalid", f"{what} is required (text)", "必填内容为空")
    if len(value) > MAX_TEXT:
        raise CommandRefused(
            "invalid", f"{what} has at most {MAX_TEXT} characters", f"内容不能超过 {MAX_TEXT} 字"
        )
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise CommandRefused("invalid", f"{what} contains control characters", "内容含有控制字符")
    return value.strip()


async def _audit(
    conn: AsyncConnection, at: datetime, actor: str, action: str, notice_id: str, **detail: Any
) -> None:
    await conn.execute(
        insert(AuditRow).values(
            at=at, actor=actor[:80], action=action, target=f"notice:{notice_id}", detail=detail
        )
    )


async def issue_notice(
    store: PatrolStore,
    nc: NatsClient,
    cfg: Inspections,
    *,
    inspection_id: str,
    item_id: str,
    finding: object,
    deadline: datetime,
    officer: str,
    officer_user: str,
    site_id: str | None = None,
) -> str:
    """A notice from a problem finding of an inspection; returns the notice id."""
    text = _text(finding, "finding")
    now = now_utc()
    if deadline <= now:
        raise CommandRefused("invalid", "the deadline is in the past", "整改期限已过")
    if deadline > now + MAX_DEADLINE:
        raise CommandRefused(
            "invalid", "the deadline is more than two years ahead", "整改期限不能超过两年"
        )
    async with store.engine.connect() as conn:
        insp = (
            await conn.execute(
                select(InspectionRow.site_id, InspectionRow.hub_inspection_id).where(
                    InspectionRow.inspection_id == inspection_id
                )
            )
        ).one_or_none()
        if insp is None:
            raise CommandRefused(
                "not_found", f"there is no inspection {inspection_id}", f"没有巡查 {inspection_id}"
            )
        if site_id is not None and site_id != insp.site_id:
            raise CommandRefused(
                "invalid",
                f"inspection {inspection_id} is of site {insp.site_id}, not {site_id}",
                f"巡查 {inspection_id} 属于商场 {insp.site_id}，不是 {site_id}",
            )
        item = (
            await conn.execute(
                select(InspectionItemRow.finding).where(
                    InspectionItemRow.inspection_id == inspection_id,
                    InspectionItemRow.item_id == item_id,
                )
            )
        ).one_or_none()
    if item is None:
        raise CommandRefused(
            "not_found", f"the inspection has no item {item_id}", f"巡查中没有检查项 {item_id}"
        )
    if item.finding != "problem":
        raise CommandRefused(
            "conflict",
            "a notice is issued from a problem finding only",
            "只能对存在问题的检查项下发整改通知",
        )
    site = str(insp.site_id)
    notice_id = new_notice_id(now)
    who: dict[str, str] = {"name": officer[:128]}
    if officer_user:
        who["id"] = officer_user[:128]
    if cfg.unit:
        who["unit"] = cfg.unit
    fields: dict[str, Any] = {
        "action": "issue",
        "notice_id": notice_id,
        "site_id": site,
        "finding": text,
        "deadline": iso_z(deadline),
        "officer": who,
    }
    if HUB_ITEM.fullmatch(item_id):
        ref: dict[str, str] = {"item_id": item_id}
        if HUB_ID.fullmatch(insp.hub_inspection_id or ""):
            ref["inspection_id"] = insp.hub_inspection_id
        fields["item"] = ref

    async def alongside(conn: AsyncConnection, request_id: str, at: datetime) -> None:
        taken = (
            await conn.execute(
                select(NoticeRow.notice_id).where(
                    NoticeRow.inspection_id == inspection_id,
                    NoticeRow.item_id == item_id,
                    NoticeRow.state != "refused",
                )
            )
        ).first()
        if taken is not None:
            raise CommandRefused(
                "conflict",
                f"notice {taken[0]} was issued for this item",
                f"该检查项已下发整改通知 {taken[0]}",
            )
        await conn.execute(
            insert(NoticeRow).values(
                notice_id=notice_id,
                site_id=site,
                inspection_id=inspection_id,
                item_id=item_id,
                finding=text,
                deadline=deadline,
                issued_by=officer[:64],
                issued_by_user=officer_user[:64],
                issued_at=at,
                state="sent",
                overdue=False,
                version=0,
                pending="",
                updated_at=at,
            )
        )
        await _audit(
            conn,
            at,
            officer_user or officer,
            "notice.issue",
            notice_id,
            site_id=site,
            inspection_id=inspection_id,
            item_id=item_id,
            deadline=iso_z(deadline),
            request_id=request_id,
        )

    await send_command(
        store, nc, site, "notice", fields, officer_user or officer, alongside=alongside
    )
    return notice_id


async def decide(
    store: PatrolStore,
    nc: NatsClient,
    notice_id: str,
    action: str,
    *,
    officer: str,
    officer_user: str,
    text: object = None,
    site_id: str | None = None,
) -> str:
    """Accept (close) or reject (send back with a reason) the mall's answer; returns the
    command's request_id. The notice shows the decision as pending until the hub's
    retained state confirms it."""
    if action not in ("accept", "reject"):
        raise CommandRefused("invalid", "action is accept or reject")
    words = _text(text, "reason" if action == "reject" else "note", required=action == "reject")
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(NoticeRow.site_id, NoticeRow.state, NoticeRow.pending).where(
                    NoticeRow.notice_id == notice_id
                )
            )
        ).one_or_none()
    if row is None:
        raise CommandRefused(
            "not_found", f"there is no notice {notice_id}", f"没有整改通知 {notice_id}"
        )
    _check_decision(notice_id, action, row.state, row.pending)
    if site_id is not None and site_id != row.site_id:
        raise CommandRefused(
            "invalid",
            f"notice {notice_id} is for site {row.site_id}, not {site_id}",
            f"整改通知 {notice_id} 属于商场 {row.site_id}，不是 {site_id}",
        )
    fields: dict[str, Any] = {
        "action": action,
        "notice_id": notice_id,
        "site_id": row.site_id,
        "by": officer[:128],
    }
    if words:
        fields["reason" if action == "reject" else "note"] = words

    async def alongside(conn: AsyncConnection, request_id: str, at: datetime) -> None:
        res = await conn.execute(
            update(NoticeRow)
            .where(
                NoticeRow.notice_id == notice_id,
                NoticeRow.state == row.state,
                NoticeRow.pending == "",
            )
            .values(pending=action, last_error=None, updated_at=at)
        )
        if not res.rowcount:
            raise CommandRefused(
                "conflict",
                "the notice changed meanwhile; look again",
                "整改通知已变化，请刷新后再试",
            )
        await _audit(
            conn,
            at,
            officer_user or officer,
            f"notice.{action}",
            notice_id,
            request_id=request_id,
            **({"reason" if action == "reject" else "note": words} if words else {}),
        )

    return await send_command(
        store, nc, str(row.site_id), "notice", fields, officer_user or officer, alongside=alongside
    )


def _check_decision(notice_id: str, action: str, state: str, pending: str) -> None:
    if state == "closed":
        raise CommandRefused("conflict", f"notice {notice_id} is closed", "该整改通知已销号")
    if state in ("sent", "refused"):
        raise CommandRefused(
            "conflict",
            f"the mall has not confirmed notice {notice_id}",
            "商场平台尚未确认收到该通知",
        )
    if pending:
        raise CommandRefused(
            "conflict",
            f"a decision ({pending}) is on its way to the mall",
            "上一次处理尚待商场平台确认",
        )
    if action == "reject" and state != "answered":
        raise CommandRefused(
            "conflict",
            f"notice {notice_id} has no answer to reject",
            "商场尚未回复，无可退回的答复",
        )


async def escalate_overdue(store: PatrolStore, now: datetime | None = None) -> list[str]:
    """Notices past their deadline that the mall still owes an answer go to the
    supervisors, once each (audited)."""
    now = now or now_utc()
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    NoticeRow.notice_id,
                    NoticeRow.issued_by,
                    NoticeRow.issued_by_user,
                    NoticeRow.deadline,
                ).where(
                    NoticeRow.state.in_(("open", "rejected", "sent")),
                    NoticeRow.escalated_at.is_(None),
                    or_(NoticeRow.overdue.is_(True), NoticeRow.deadline <= now),
                )
            )
        ).all()
    done = []
    for notice_id, issued_by, issued_by_user, deadline in rows:
        async with store.serial(), store.engine.begin() as conn:
            boss = (
                await conn.execute(select(UserRow.supervisor).where(UserRow.name == issued_by_user))
            ).scalar_one_or_none() or ""
            res = await conn.execute(
                update(NoticeRow)
                .where(NoticeRow.notice_id == notice_id, NoticeRow.escalated_at.is_(None))
                .values(escalated_at=now, escalated_to=boss)
            )
            if not res.rowcount:
                continue
            await _audit(
                conn,
                now,
                "system",
                "notice.escalated",
                notice_id,
                to=boss or "supervisor",
                issued_by=issued_by,
                deadline=iso(deadline),
            )
        done.append(notice_id)
    return done


# --- reading -----------------------------------------------------------------------------


def notice_dict(row: NoticeRow, names: dict[str, tuple[str, str]], now: datetime) -> dict[str, Any]:
    name, district = names.get(row.site_id, ("", ""))
    hub = row.hub if isinstance(row.hub, dict) else {}
    deadline = utc(row.deadline)
    owes = row.state in ("open", "rejected", "sent")
    return {
        "notice_id": row.notice_id,
        "site_id": row.site_id,
        "mall": name,
        "district": district,
        "inspection_id": row.inspection_id,
        "item_id": row.item_id or None,
        "finding": row.finding,
        "deadline": iso(row.deadline),
        "issued_by": row.issued_by,
        "issued_at": iso(row.issued_at),
        "state": row.state,
        "overdue": bool(row.overdue) or (owes and deadline is not None and deadline <= now),
        "version": row.version,
        "pending": row.pending or None,
        "last_error": row.last_error,
        "escalated_at": iso(row.escalated_at),
        "escalated_to": row.escalated_to or None,
        "steps": hub.get("steps", []),
        "updated_at": iso(row.updated_at),
    }


async def list_notices(
    engine: AsyncEngine,
    registry: dict[str, tuple[str, str]],
    *,
    site_id: str | None = None,
    state: str | None = None,
    escalated: bool = False,
    supervisor: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Newest first; ``escalated`` gives the supervisors' list (escalated, still open):
    with ``supervisor``, those escalated to that user or to every supervisor."""
    q = select(NoticeRow).order_by(NoticeRow.issued_at.desc()).limit(limit)
    if site_id is not None:
        q = q.where(NoticeRow.site_id == site_id)
    if state == "open":
        q = q.where(NoticeRow.state.in_(OPEN_STATES))
    elif state is not None:
        q = q.where(NoticeRow.state == state)
    if escalated:
        q = q.where(NoticeRow.escalated_at.is_not(None), NoticeRow.state.in_(OPEN_STATES))
        if supervisor is not None:
            q = q.where(NoticeRow.escalated_to.in_(("", supervisor)))
    async with AsyncSession(engine) as session:
        rows = (await session.execute(q)).scalars().all()
    names = await mall_names(engine, registry)
    now = now_utc()
    return [notice_dict(r, names, now) for r in rows]


async def get_notice(
    engine: AsyncEngine, notice_id: str, registry: dict[str, tuple[str, str]]
) -> dict[str, Any] | None:
    async with AsyncSession(engine) as session:
        row = (
            await session.execute(select(NoticeRow).where(NoticeRow.notice_id == notice_id))
        ).scalar_one_or_none()
    if row is None:
        return None
    out = notice_dict(row, await mall_names(engine, registry), now_utc())
    ev = NoticeEvidenceRow
    async with engine.connect() as conn:
        pictures = (
            await conn.execute(
                select(
                    ev.sha256,
                    ev.step,
                    ev.camera_id,
                    ev.taken_at,
                    ev.picture.is_not(None).label("has_picture"),
                    ev.picture_error,
                )
                .where(ev.notice_id == notice_id)
                .order_by(ev.step, ev.camera_id)
            )
        ).all()
    out["evidence"] = [
        {
            "sha256": p.sha256,
            "step": p.step,
            "camera_id": p.camera_id,
            "taken_at": iso(p.taken_at),
            "has_picture": bool(p.has_picture),
            "picture_error": p.picture_error or None,
        }
        for p in pictures
    ]
    return out


async def get_evidence_picture(
    engine: AsyncEngine, notice_id: str, sha256: str
) -> tuple[bytes, str] | None:
    """A picture of the mall's answer, once fetched (its digest is ``sha256``)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(NoticeEvidenceRow.picture, NoticeEvidenceRow.content_type).where(
                    NoticeEvidenceRow.notice_id == notice_id, NoticeEvidenceRow.sha256 == sha256
                )
            )
        ).one_or_none()
    if row is None or row.picture is None:
        return None
    return bytes(row.picture), row.content_type or "application/octet-stream"
