"""What a store operation works with inside the writer's transaction: the batch's seq and
audit-chain heads, the audit and outbox rows it gathers, the session; and the operation
protocol itself."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.audit import chain_hash
from hub.store.models import AuditLog, Outbox, Retained


def now_utc() -> datetime:
    return datetime.now(UTC)


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An outbox row as the police link needs it."""

    id: int
    kind: str
    topic: str
    payload: str
    retain: bool
    priority: int
    seq: int
    event_id: str | None
    receipt_required: bool = False
    republish: bool = False
    """Published before (a receipt is overdue), not new."""

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.priority, self.seq, self.id)


class BatchRows:
    """What one batch writes besides its own statements: the seq and audit-chain heads as
    they advance, and the audit and outbox rows, inserted together when the batch ends (one
    multi-row INSERT each), so a batch of a hundred alarms costs a handful of statements.

    Pure bookkeeping, shared by the general path (``WriteContext``) and the SQLite fast path.
    """

    def __init__(self, now: datetime, seq: int, audit_head: str) -> None:
        self.now = now
        self.seq = seq
        self.audit_head = audit_head
        self._audit_rows: list[dict[str, Any]] = []
        self._outbox_rows: list[dict[str, Any]] = []

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        h = chain_hash(self.audit_head, self.now, actor, action, subject, detail)
        self._audit_rows.append(
            {
                "at": self.now,
                "actor": actor,
                "action": action,
                "subject": subject,
                "detail": detail,
                "prev_hash": self.audit_head,
                "hash": h,
            }
        )
        self.audit_head = h

    def add_outbox(
        self,
        *,
        kind: str,
        topic: str,
        text: str,
        priority: int,
        seq: int = 0,
        event_id: str | None = None,
        retain: bool = False,
        coalesce_key: str | None = None,
        receipt_required: bool = False,
    ) -> None:
        """Queue an outbox row (``text`` is the serialised payload)."""
        self._outbox_rows.append(
            {
                "kind": kind,
                "topic": topic,
                "payload": text,
                "retain": retain,
                "priority": priority,
                "seq": seq,
                "event_id": event_id,
                "coalesce_key": coalesce_key,
                "created_at": self.now,
                "publish_count": 0,
                "receipt_required": receipt_required,
            }
        )

    @property
    def pending_outbox(self) -> Sequence[dict[str, Any]]:
        """The outbox rows gathered so far (not handed over)."""
        return self._outbox_rows

    def take_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The gathered (audit rows, outbox rows), handed over once."""
        audit, self._audit_rows = self._audit_rows, []
        outbox, self._outbox_rows = self._outbox_rows, []
        return audit, outbox

    @staticmethod
    def messages(ids: Sequence[int], rows: Sequence[dict[str, Any]]) -> list[OutboxMessage]:
        return [
            OutboxMessage(
                i,
                r["kind"],
                r["topic"],
                r["payload"],
                r["retain"],
                r["priority"],
                r["seq"],
                r["event_id"],
                r["receipt_required"],
            )
            for i, r in zip(ids, rows, strict=True)
        ]


class WriteContext(BatchRows):
    """What an operation may do inside the writer's transaction (the general path)."""

    def __init__(self, session: AsyncSession, now: datetime, seq: int, audit_head: str) -> None:
        super().__init__(now, seq, audit_head)
        self.session = session

    async def enqueue(
        self,
        *,
        kind: str,
        topic: str,
        payload: dict[str, Any],
        priority: int,
        seq: int = 0,
        event_id: str | None = None,
        retain: bool = False,
        coalesce_key: str | None = None,
        receipt_required: bool = False,
    ) -> None:
        """Add a message to the outbox (replacing an unpublished one with the same key)."""
        text = dumps(payload)
        if coalesce_key is not None:
            self._outbox_rows = [r for r in self._outbox_rows if r["coalesce_key"] != coalesce_key]
            await self.session.execute(
                delete(Outbox).where(
                    Outbox.coalesce_key == coalesce_key, Outbox.published_at.is_(None)
                )
            )
        if retain:
            await self.session.merge(Retained(topic=topic, payload=text, updated_at=self.now))
        self.add_outbox(
            kind=kind,
            topic=topic,
            text=text,
            priority=priority,
            seq=seq,
            event_id=event_id,
            retain=retain,
            coalesce_key=coalesce_key,
            receipt_required=receipt_required,
        )

    async def flush_rows(self) -> list[OutboxMessage]:
        """Insert the collected audit and outbox rows; return the new outbox messages."""
        audit, rows = self.take_rows()
        if audit:
            await self.session.execute(insert(AuditLog), audit)
        if not rows:
            return []
        ids = (
            await self.session.execute(
                insert(Outbox).returning(Outbox.id, sort_by_parameter_order=True), rows
            )
        ).scalars()
        return self.messages(list(ids), rows)


class Operation(Protocol):
    async def apply(self, ctx: WriteContext) -> Any: ...


def iso(t: datetime) -> str:
    """RFC 3339 UTC with milliseconds and 'Z', the form every message uses."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
