"""Store operations for notices. Each one checks its transition inside the write transaction,
records a step, writes the audit row and queues the retained message, all in one commit: the
state the police see is always a state the store holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.notices.model import (
    MAX_STEPS,
    OPEN_STATES,
    Action,
    DecisionRequest,
    IssueRequest,
    NoticeError,
    NoticeView,
    next_state,
)
from hub.store.models import Notice, NoticeStep
from hub.store.writer import WriteContext, iso

NOTICE_PRIORITY = 2
"""Notices leave with command responses: after alarms, before faults and state."""


@dataclass(frozen=True, slots=True)
class Changed:
    """What a notice operation did: the notice as it is now, and whether it changed."""

    notice: NoticeView
    changed: bool

    def result(self) -> dict[str, Any]:
        n = self.notice
        return {
            "notice_id": n.notice_id,
            "state": n.state,
            "changed": self.changed,
            "version": n.version,
        }


def notice_topic(prefix: str, notice_id: str) -> str:
    return f"{prefix}/notices/{notice_id}"


async def load_view(conn: AsyncSession, notice_id: str) -> NoticeView | None:
    row = (
        await conn.execute(select(Notice).where(Notice.notice_id == notice_id))
    ).scalar_one_or_none()
    if row is None:
        return None
    steps = (
        (
            await conn.execute(
                select(NoticeStep).where(NoticeStep.notice_id == notice_id).order_by(NoticeStep.id)
            )
        )
        .scalars()
        .all()
    )
    return _view(row, list(steps))


async def load_views(
    conn: AsyncSession, *, open_only: bool = False, limit: int = 500
) -> list[NoticeView]:
    """Notices, newest first (open ones only when asked), each with its steps."""
    q = select(Notice)
    if open_only:
        q = q.where(Notice.state.in_(sorted(OPEN_STATES)))
    rows = list(
        (await conn.execute(q.order_by(Notice.issued_at.desc(), Notice.id.desc()).limit(limit)))
        .scalars()
        .all()
    )
    if not rows:
        return []
    steps: dict[str, list[NoticeStep]] = {}
    found = await conn.execute(
        select(NoticeStep)
        .where(NoticeStep.notice_id.in_([r.notice_id for r in rows]))
        .order_by(NoticeStep.id)
    )
    for s in found.scalars():
        steps.setdefault(s.notice_id, []).append(s)
    return [_view(r, steps.get(r.notice_id, [])) for r in rows]


def _view(row: Notice, steps: list[NoticeStep]) -> NoticeView:
    return NoticeView(
        notice_id=row.notice_id,
        state=row.state,
        finding=row.finding,
        deadline=row.deadline,
        officer=dict(row.officer),
        item=dict(row.item) if row.item is not None else None,
        issued_at=row.issued_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        version=row.version,
        steps=[_step_json(i, s) for i, s in enumerate(steps, 1)],
    )


def _step_json(n: int, s: NoticeStep) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n": n,
        "at": iso(s.at),
        "action": s.action,
        "state": s.state,
        "by": s.by,
        "via": s.via,
    }
    out.update(s.detail or {})
    return out


async def _publish(ctx: WriteContext, row: Notice, prefix: str, site_id: str) -> NoticeView:
    """Flush, read the notice back with its steps and queue its retained message."""
    await ctx.session.flush()
    view = await load_view(ctx.session, row.notice_id)
    assert view is not None
    await ctx.enqueue(
        kind="notice",
        topic=notice_topic(prefix, row.notice_id),
        payload=view.message(site_id, ctx.now),
        priority=NOTICE_PRIORITY,
        retain=True,
    )
    return view


async def _row(ctx: WriteContext, notice_id: str) -> Notice:
    row = (
        await ctx.session.execute(select(Notice).where(Notice.notice_id == notice_id))
    ).scalar_one_or_none()
    if row is None:
        raise NoticeError("not_found", f"no notice {notice_id}")
    return row


async def _step_count(ctx: WriteContext, notice_id: str) -> int:
    rows = await ctx.session.execute(select(NoticeStep.id).where(NoticeStep.notice_id == notice_id))
    return len(rows.all())


def _add_step(
    ctx: WriteContext,
    row: Notice,
    action: str,
    by: str,
    via: str,
    detail: dict[str, Any],
) -> None:
    ctx.session.add(
        NoticeStep(
            notice_id=row.notice_id,
            at=ctx.now,
            action=action,
            state=row.state,
            by=by[:128],
            via=via,
            detail=detail,
        )
    )


@dataclass(slots=True)
class IssueNotice:
    """The police issue a notice; the same notice again (same terms) changes nothing."""

    request: IssueRequest
    prefix: str
    site_id: str
    request_id: str | None = None

    async def apply(self, ctx: WriteContext) -> Changed:
        req = self.request
        existing = (
            await ctx.session.execute(select(Notice).where(Notice.notice_id == req.notice_id))
        ).scalar_one_or_none()
        if existing is not None:
            if existing.terms != req.terms():
                raise NoticeError(
                    "conflict", f"notice {req.notice_id} exists already with other terms"
                )
            view = await load_view(ctx.session, req.notice_id)
            assert view is not None
            return Changed(view, False)
        row = Notice(
            notice_id=req.notice_id,
            state="open",
            finding=req.finding,
            deadline=req.deadline,
            officer=req.officer,
            item=req.item,
            terms=req.terms(),
            issued_at=ctx.now,
            updated_at=ctx.now,
            closed_at=None,
            version=1,
            overdue_published=False,
        )
        ctx.session.add(row)
        detail: dict[str, Any] = {}
        if self.request_id:
            detail["request_id"] = self.request_id
        _add_step(ctx, row, "issued", req.officer["name"], "police", detail)
        ctx.audit(
            f"police:{req.officer['name']}"[:128],
            "notice.issued",
            f"notice:{req.notice_id}",
            {"deadline": iso(req.deadline), "item": req.item, "finding": req.finding[:200]},
        )
        return Changed(await _publish(ctx, row, self.prefix, self.site_id), True)


@dataclass(slots=True)
class DecideNotice:
    """The officer accepts (closes) or rejects the mall's answer.

    Accepting a notice that is already closed changes nothing and says so (a command may be
    delivered twice); any other step on a closed notice is refused.
    """

    request: DecisionRequest
    prefix: str
    site_id: str

    async def apply(self, ctx: WriteContext) -> Changed:
        req = self.request
        row = await _row(ctx, req.notice_id)
        if row.state == "closed" and req.action == "accept":
            view = await load_view(ctx.session, req.notice_id)
            assert view is not None
            return Changed(view, False)
        action: Action = req.action
        row.state = next_state(row.state, action, req.notice_id)
        if await _step_count(ctx, req.notice_id) >= MAX_STEPS:
            raise NoticeError("conflict", f"notice {req.notice_id} has too many steps")
        row.updated_at = ctx.now
        row.version += 1
        if row.state == "closed":
            row.closed_at = ctx.now
        key = "reason" if req.action == "reject" else "note"
        detail = {key: req.text} if req.text else {}
        step = "accepted" if req.action == "accept" else "rejected"
        _add_step(ctx, row, step, req.by, "police", detail)
        ctx.audit(
            f"police:{req.by}"[:128],
            f"notice.{step}",
            f"notice:{req.notice_id}",
            {**detail, "state": row.state},
        )
        return Changed(await _publish(ctx, row, self.prefix, self.site_id), True)


@dataclass(slots=True)
class AnswerNotice:
    """The mall answers: what was done, with evidence (snapshots, device states, a note)."""

    notice_id: str
    by: str
    actor: str
    note: str
    evidence: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""
    site_id: str = ""

    async def apply(self, ctx: WriteContext) -> Changed:
        row = await _row(ctx, self.notice_id)
        row.state = next_state(row.state, "answer", self.notice_id)
        if await _step_count(ctx, self.notice_id) >= MAX_STEPS:
            raise NoticeError("conflict", f"notice {self.notice_id} has too many steps")
        row.updated_at = ctx.now
        row.version += 1
        detail = {"note": self.note, "evidence": self.evidence}
        _add_step(ctx, row, "answered", self.by, "console", detail)
        ctx.audit(
            self.actor,
            "notice.answered",
            f"notice:{self.notice_id}",
            {
                "note": self.note[:200],
                "snapshots": [s["sha256"] for s in self.evidence.get("snapshots", [])],
                "devices": {d["device_id"]: d["state"] for d in self.evidence.get("devices", [])},
            },
        )
        return Changed(await _publish(ctx, row, self.prefix, self.site_id), True)


@dataclass(slots=True)
class MarkOverdue:
    """A notice's deadline passed without an answer: say so once, to the police too."""

    notice_id: str
    prefix: str
    site_id: str
    now: datetime

    async def apply(self, ctx: WriteContext) -> bool:
        row = await _row(ctx, self.notice_id)
        if row.overdue_published or row.state not in ("open", "rejected"):
            return False
        if row.deadline > self.now:
            return False
        row.overdue_published = True
        row.version += 1
        row.updated_at = ctx.now
        _add_step(ctx, row, "overdue", "hub", "hub", {"deadline": iso(row.deadline)})
        ctx.audit("hub", "notice.overdue", f"notice:{self.notice_id}", {"state": row.state})
        await _publish(ctx, row, self.prefix, self.site_id)
        return True
