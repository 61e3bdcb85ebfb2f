"""The store's single writer: every change goes through one queue, committed in groups.

One writer gives three guarantees cheaply: ``seq`` is gap-free and monotonic, the audit
log's hash chain is linear, and SQLite never sees two writers. Concurrent callers share a
commit (group commit): while one transaction commits, the next batch gathers in the queue.
A caller's ``submit`` returns only after its batch has committed, so an alarm is durable
before anybody acknowledges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.store.audit import GENESIS, chain_hash
from hub.store.models import AuditLog, Event, EventUpdate, Outbox, Retained, StoreLock
from hub.tasks import stop_task

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The change could not be committed; the caller must not acknowledge it."""


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


def iso(t: datetime) -> str:
    """RFC 3339 UTC with milliseconds and 'Z', the form every message uses."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_bad_input(exc: BaseException) -> bool:
    """True for errors raised by an operation's own values, not by the database.

    SQLAlchemy wraps errors from binding parameters (a date out of range, a wrong type) in
    a ``StatementError`` that is not a ``DBAPIError``: the database never saw the statement.
    """
    if isinstance(exc, UnknownEvent | ValueError | LookupError | OverflowError | TypeError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


_HEADS = select(
    select(func.max(Event.seq)).scalar_subquery(),
    select(AuditLog.hash).order_by(AuditLog.id.desc()).limit(1).scalar_subquery(),
)


def _ignore_result(fut: asyncio.Future[Any]) -> None:
    # Deferred marks have no caller waiting; a failure only means the messages are
    # published again later (the store failure itself is logged by the writer).
    if not fut.cancelled():
        fut.exception()


CommitListener = Callable[[Sequence[tuple[Operation, Any]]], None]
OutboxListener = Callable[[list[OutboxMessage]], None]


@dataclass(slots=True)
class _Item:
    op: Operation
    future: asyncio.Future[Any]
    deferred: bool = False
    """Bookkeeping riding along with a batch (publication marks), not a caller's write."""


class StoreWriter:
    """Owns all writes to the store. Use as an async context manager."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256, fast: bool = True) -> None:
        # Imported here: the fast path is built from this module's operations.
        from hub.store.fastpath import SqliteFastPath, fast_url

        self.engine = engine
        url = fast_url(engine.url) if fast else None
        self.fast: SqliteFastPath | None = SqliteFastPath(url) if url is not None else None
        """The one-hop path for alarms and publication marks (SQLite files only)."""
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._listeners: list[CommitListener] = []
        self._outbox_listeners: list[OutboxListener] = []
        self._marks: list[MarkPublished] = []
        self._mark_due: float | None = None
        self.defer_s = 0.5
        self._seq = 0
        self._audit_head = GENESIS
        self._task: asyncio.Task[None] | None = None
        self.healthy = True
        self.last_error: str = ""
        self.commits = 0
        self.fast_commits = 0
        self.batched_ops = 0
        self.on_health_change: Callable[[bool, str], Awaitable[None] | None] | None = None

    def add_outbox_listener(self, listener: OutboxListener) -> None:
        """Called with the outbox messages each commit added (in the writer task)."""
        self._outbox_listeners.append(listener)

    def add_listener(self, listener: CommitListener) -> None:
        """Called (synchronously, in the writer task) after every successful commit."""
        self._listeners.append(listener)

    async def __aenter__(self) -> Self:
        await self._load_heads()
        self._task = asyncio.create_task(self._run(), name="store-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Finish what is queued (in-flight commits complete), then stop.
        await self._queue.join()
        await stop_task(self._task)
        self._task = None
        marks = self._take_marks()
        if marks:
            with contextlib.suppress(Exception):
                await self._commit_batch(marks)
        if self.fast is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.fast.close)

    async def submit(self, op: Operation) -> Any:
        """Queue ``op`` and wait until it is committed. Raises StoreUnavailable on failure."""
        if self._task is None or self._task.done():
            raise StoreUnavailable("the store writer is not running")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(op, fut))
        return await fut

    def submit_nowait(self, op: Operation) -> asyncio.Future[Any]:
        """Queue ``op`` and return its future at once: for callbacks that run inside the
        writer's own task (``on_health_change``), where awaiting ``submit`` would deadlock."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(op, fut))
        return fut

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def seq(self) -> int:
        return self._seq

    async def _load_heads(self) -> None:
        async with self.sessions() as s:
            self._seq = int((await s.execute(select(func.max(Event.seq)))).scalar() or 0)
            head = (
                await s.execute(select(AuditLog.hash).order_by(AuditLog.id.desc()).limit(1))
            ).scalar()
            self._audit_head = head or GENESIS

    def defer_published(
        self, outbox_ids: Sequence[int], event_ids: Sequence[str], at: datetime
    ) -> None:
        """Record publications with the next batch that commits anyway (or within
        ``defer_s``), so marking never costs an alarm a commit of its own. A crash before
        that only means the messages go out again, with the same ids."""
        self._marks.append(MarkPublished(list(outbox_ids), list(event_ids), at))
        if self._mark_due is None:
            self._mark_due = asyncio.get_running_loop().time() + self.defer_s

    def _take_marks(self) -> list[_Item]:
        marks, self._marks = self._marks, []
        self._mark_due = None
        items = []
        for op in marks:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_ignore_result)
            items.append(_Item(op, fut, deferred=True))
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first: _Item | None = None
            if self._mark_due is None:
                first = await self._queue.get()
            else:
                try:
                    async with asyncio.timeout(max(0.0, self._mark_due - loop.time())):
                        first = await self._queue.get()
                except TimeoutError:
                    first = None
            batch = [first] if first is not None else []
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit_batch(batch + self._take_marks())
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit_batch(self, batch: list[_Item]) -> None:
        live = [i for i in batch if not i.future.cancelled()]
        # Alarms and marks take the fast path (where there is one), anything else the
        # general one: consecutive items of one kind commit together, in queue order.
        fast = self.fast
        for on_fast, run in itertools.groupby(
            live, key=lambda i: fast is not None and fast.handles((i.op,))
        ):
            await self._commit_run(list(run), on_fast)

    async def _commit_run(self, live: list[_Item], on_fast: bool) -> None:
        try:
            results, fresh = await self._commit(live, on_fast)
        except asyncio.CancelledError:
            for i in live:
                if not i.future.done():
                    i.future.set_exception(StoreUnavailable("the hub is stopping"))
            raise
        except Exception as exc:
            if len(live) > 1:
                # One bad operation must not fail its neighbours: commit them one by one.
                for item in live:
                    await self._commit_run([item], on_fast)
                return
            await self._failed(live[0], exc)
            return
        if not all(i.deferred for i in live):
            # Marks are UPDATEs that can succeed on a full disk; only a real write proves
            # that the store works again.
            await self._set_health(True, "")
        for item, result in zip(live, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        pairs = [(i.op, r) for i, r in zip(live, results, strict=True)]
        for listener in self._listeners:
            try:
                listener(pairs)
            except Exception:
                log.exception("store commit listener failed")
        if fresh:
            for outbox_listener in self._outbox_listeners:
                try:
                    outbox_listener(fresh)
                except Exception:
                    log.exception("outbox listener failed")

    async def _commit(
        self, items: list[_Item], on_fast: bool
    ) -> tuple[list[Any], list[OutboxMessage]]:
        now = now_utc()
        ops = [i.op for i in items]
        if on_fast and self.fast is not None:
            done, fresh, self._seq, self._audit_head = await self.fast.commit(ops, now)
            self.commits += 1
            self.fast_commits += 1
            self.batched_ops += len(items)
            return done, fresh
        async with self.sessions() as session, session.begin():
            # Take the store's write lock first, then read the heads inside the transaction:
            # another process (an operator's CLI, a second hub by mistake) may have written
            # since our last commit, and the seq and the audit chain must stay linear.
            await session.execute(update(StoreLock).where(StoreLock.id == 1).values(id=1))
            seq, head = (await session.execute(_HEADS)).one()
            ctx = WriteContext(session, now, int(seq or 0), head or GENESIS)
            results: list[Any] = []
            for step in event_runs(ops):
                if isinstance(step, list):
                    results.extend(await StoreEvent.apply_many(ctx, step))
                else:
                    results.append(await step.apply(ctx))
            fresh = await ctx.flush_rows()
        # Only a committed transaction moves the heads forward.
        self._seq = ctx.seq
        self._audit_head = ctx.audit_head
        self.commits += 1
        self.batched_ops += len(items)
        return results, fresh

    async def _failed(self, item: _Item, exc: Exception) -> None:
        if is_bad_input(exc):
            # The operation was wrong (an unknown event, a value the column cannot hold);
            # the store is fine. Only this caller hears about it.
            if not item.future.done():
                item.future.set_exception(exc)
            return
        log.error("store commit failed: %s", exc)
        await self._set_health(False, f"{type(exc).__name__}: {exc}")
        if not item.future.done():
            item.future.set_exception(StoreUnavailable(str(exc)))

    async def _set_health(self, healthy: bool, error: str) -> None:
        changed = healthy != self.healthy
        self.healthy = healthy
        self.last_error = error
        if changed and self.on_health_change is not None:
            res = self.on_health_change(healthy, error)
            if res is not None:
                await res
