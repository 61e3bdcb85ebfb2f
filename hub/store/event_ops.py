"""Store operations on events: store a new event (with its outbox message, deduplicated) and
record a change to one."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from hub.store.batch import BatchRows, Operation, WriteContext, dumps, iso
from hub.store.models import Event, EventUpdate


@dataclass(slots=True)
class PendingEvent:
    """An event ready to store: everything but its ``seq``."""

    event_id: str
    kind: str
    category: str
    priority: int
    device_id: str | None
    occurred_at: datetime
    received_at: datetime
    source: dict[str, Any]
    detail: dict[str, Any]
    device_state: str | None
    dedupe_key: str | None
    dedupe_since: datetime | None
    test_mode: bool
    message: dict[str, Any]
    topic: str
    receipt_required: bool


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    seq: int
    kind: str
    category: str
    priority: int
    device_id: str | None
    received_at: datetime
    message: dict[str, Any]
    duplicate: bool = False


@dataclass(slots=True)
class StoreEvent:
    event: PendingEvent

    async def apply(self, ctx: WriteContext) -> StoredEvent:
        return (await StoreEvent.apply_many(ctx, [self]))[0]

    @staticmethod
    async def apply_many(ctx: WriteContext, ops: Sequence[StoreEvent]) -> list[StoredEvent]:
        """Store a batch of events: one duplicate lookup and one INSERT per table."""
        keys = {op.event.dedupe_key for op in ops if op.event.dedupe_key is not None}
        known: dict[str, StoredEvent] = {}
        if keys:
            found = await ctx.session.execute(
                select(*PRIOR_COLUMNS).where(Event.dedupe_key.in_(keys))
            )
            for ev_id, seq, kind, cat, prio, dev, rec, msg, key in found:
                prior = StoredEvent(ev_id, seq, kind, cat, prio, dev, rec, msg, duplicate=True)
                StoreEvent.remember(known, prior, str(key))
        results, rows = StoreEvent.plan(ctx, ops, known)
        if rows:
            await ctx.session.execute(insert(Event), rows)
        return results

    @staticmethod
    def remember(known: dict[str, StoredEvent], prior: StoredEvent, key: str) -> None:
        """Keep the latest stored event per dedupe key."""
        held = known.get(key)
        if held is None or prior.received_at > held.received_at:
            known[key] = prior

    @staticmethod
    def plan(
        rows_ctx: BatchRows, ops: Sequence[StoreEvent], known: dict[str, StoredEvent]
    ) -> tuple[list[StoredEvent], list[dict[str, Any]]]:
        """Decide each event of a batch (new, or a repeat of ``known`` or of an earlier one
        in the batch), give the new ones their seq, and gather their outbox and audit rows.
        Returns the results in order and the event rows to insert."""
        batch: dict[str, StoredEvent] = {}
        results: list[StoredEvent] = []
        rows: list[dict[str, Any]] = []
        for op in ops:
            ev = op.event
            key = ev.dedupe_key
            if key is not None:
                if key in batch:
                    results.append(replace(batch[key], duplicate=True))
                    continue
                prior = known.get(key)
                if prior is not None and (
                    ev.dedupe_since is None or prior.received_at >= ev.dedupe_since
                ):
                    results.append(prior)
                    continue
            seq = rows_ctx.next_seq()
            message = {**ev.message, "seq": seq}
            rows.append(
                {
                    "event_id": ev.event_id,
                    "seq": seq,
                    "kind": ev.kind,
                    "category": ev.category,
                    "priority": ev.priority,
                    "device_id": ev.device_id,
                    "occurred_at": ev.occurred_at,
                    "received_at": ev.received_at,
                    "source": ev.source,
                    "detail": ev.detail,
                    "device_state": ev.device_state,
                    "dedupe_key": key,
                    "test_mode": ev.test_mode,
                    "state": "new",
                    "update_seq": 0,
                    "message": message,
                }
            )
            rows_ctx.add_outbox(
                kind="event",
                topic=ev.topic,
                text=dumps(message),
                priority=ev.priority,
                seq=seq,
                event_id=ev.event_id,
                receipt_required=ev.receipt_required,
            )
            rows_ctx.audit(
                "hub",
                "event.stored",
                ev.event_id,
                {"seq": seq, "kind": ev.kind, "device_id": ev.device_id, "source": ev.source},
            )
            stored = StoredEvent(
                ev.event_id,
                seq,
                ev.kind,
                ev.category,
                ev.priority,
                ev.device_id,
                ev.received_at,
                message,
            )
            if key is not None:
                batch[key] = stored
            results.append(stored)
        return results, rows


def event_runs(ops: Sequence[Operation]) -> Iterator[list[StoreEvent] | Operation]:
    """The operations in order, each run of consecutive ``StoreEvent``s gathered into one
    list: events are stored together, everything else one by one."""
    for is_event, run in itertools.groupby(ops, key=lambda op: isinstance(op, StoreEvent)):
        if is_event:
            yield [op for op in run if isinstance(op, StoreEvent)]
        else:
            yield from run


PRIOR_COLUMNS = (
    Event.event_id,
    Event.seq,
    Event.kind,
    Event.category,
    Event.priority,
    Event.device_id,
    Event.received_at,
    Event.message,
    Event.dedupe_key,
)
"""What a duplicate's result needs of the stored event (the StoredEvent fields, then the key)."""


class UnknownEvent(LookupError):
    """An update named an event the store does not have."""


@dataclass(slots=True)
class UpdateEvent:
    """Record a change to an event and queue the update message for the police."""

    event_id: str
    topic: str
    site_id: str
    changes: dict[str, Any]
    """Any of: state (dict), attachments (list), linkage (list)."""
    actor: str = "hub"
    audit_action: str | None = None

    async def apply(self, ctx: WriteContext) -> dict[str, Any]:
        row = (
            await ctx.session.execute(select(Event).where(Event.event_id == self.event_id))
        ).scalar_one_or_none()
        if row is None:
            raise UnknownEvent(self.event_id)
        row.update_seq += 1
        state = self.changes.get("state")
        if isinstance(state, dict):
            row.state = str(state["state"])
            row.state_at = ctx.now
            row.state_by = state.get("by")
            row.state_via = state.get("via")
            if "disposition" in state:
                row.disposition = state["disposition"]
            if "note" in state:
                row.note = state["note"]
        message: dict[str, Any] = {
            "schema": "mallhub/event-update/1",
            "event_id": self.event_id,
            "update_seq": row.update_seq,
            "site_id": self.site_id,
            "ts": iso(ctx.now),
            **self.changes,
        }
        ctx.session.add(
            EventUpdate(
                event_id=self.event_id,
                update_seq=row.update_seq,
                created_at=ctx.now,
                message=message,
            )
        )
        await ctx.enqueue(
            kind="update",
            topic=self.topic,
            payload=message,
            priority=row.priority,
            seq=row.seq,
            event_id=self.event_id,
        )
        if self.audit_action:
            ctx.audit(self.actor, self.audit_action, self.event_id, self.changes)
        return message
