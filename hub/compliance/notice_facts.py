"""The police's rectification notices as compliance facts (rule POL-NOTICE)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from hub.store.models import Notice, NoticeStep


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """A police rectification notice as it stood at the evaluated moment."""

    notice_id: str
    state: str
    finding: str
    issued_at: datetime
    deadline: datetime
    officer: str


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


async def load_notice_facts(conn: Any, t: datetime) -> list[NoticeFacts]:
    """Notices issued by ``t``, each in the state its last step before ``t`` left it, so a
    past report reads as it did then."""
    notices = (
        await conn.execute(select(Notice).where(Notice.issued_at <= t).order_by(Notice.id))
    ).all()
    if not notices:
        return []
    states: dict[str, str] = {}
    steps = await conn.execute(
        select(NoticeStep.notice_id, NoticeStep.state)
        .where(NoticeStep.at <= t)
        .order_by(NoticeStep.id)
    )
    for notice_id, state in steps.all():
        states[notice_id] = state
    return [
        NoticeFacts(
            n.notice_id,
            states.get(n.notice_id, "open"),
            n.finding,
            _utc(n.issued_at),
            _utc(n.deadline),
            str((n.officer or {}).get("name", "")),
        )
        for n in notices
    ]
