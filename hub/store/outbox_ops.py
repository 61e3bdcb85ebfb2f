"""Store operations on the outbox and the audit log: queue a message, mark messages published
or receipted, prune delivered ones, add an audit entry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update

from hub.store.batch import WriteContext
from hub.store.models import Event, Outbox


@dataclass(slots=True)
class EnqueueMessage:
    kind: str
    topic: str
    payload: dict[str, Any]
    priority: int
    retain: bool = False
    coalesce_key: str | None = None

    async def apply(self, ctx: WriteContext) -> None:
        await ctx.enqueue(
            kind=self.kind,
            topic=self.topic,
            payload=self.payload,
            priority=self.priority,
            retain=self.retain,
            coalesce_key=self.coalesce_key,
        )


@dataclass(slots=True)
class MarkPublished:
    outbox_ids: Sequence[int]
    event_ids: Sequence[str]
    at: datetime | None = None
    """When the broker acknowledged them; the commit time if not given."""

    async def apply(self, ctx: WriteContext) -> None:
        at = self.at or ctx.now
        await ctx.session.execute(
            update(Outbox)
            .where(Outbox.id.in_(self.outbox_ids))
            .values(published_at=at, publish_count=Outbox.publish_count + 1)
        )
        if self.event_ids:
            await ctx.session.execute(
                update(Event)
                .where(Event.event_id.in_(self.event_ids), Event.first_published_at.is_(None))
                .values(first_published_at=at)
            )


@dataclass(slots=True)
class MarkReceipted:
    event_id: str
    by: str
    received_at: datetime | None

    async def apply(self, ctx: WriteContext) -> bool:
        res = await ctx.session.execute(
            update(Event)
            .where(Event.event_id == self.event_id, Event.receipted_at.is_(None))
            .values(receipted_at=ctx.now, receipted_by=self.by[:128])
        )
        await ctx.session.execute(
            update(Outbox)
            .where(
                Outbox.event_id == self.event_id,
                Outbox.kind == "event",
                Outbox.receipted_at.is_(None),
            )
            .values(receipted_at=ctx.now)
        )
        return bool(getattr(res, "rowcount", 0))


@dataclass(slots=True)
class Audit:
    actor: str
    action: str
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)

    async def apply(self, ctx: WriteContext) -> None:
        ctx.audit(self.actor, self.action, self.subject, self.detail)


@dataclass(slots=True)
class PruneOutbox:
    """Drop messages that are delivered (and receipted where required) and old enough."""

    older_than: timedelta

    async def apply(self, ctx: WriteContext) -> int:
        cutoff = ctx.now - self.older_than
        res = await ctx.session.execute(
            delete(Outbox).where(
                Outbox.published_at.is_not(None),
                Outbox.published_at < cutoff,
                (Outbox.receipt_required.is_(False)) | (Outbox.receipted_at.is_not(None)),
            )
        )
        return int(getattr(res, "rowcount", 0) or 0)
