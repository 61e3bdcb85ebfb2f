"""The store's single writer: every change goes through one queue, committed in groups.

One writer gives three guarantees cheaply: ``seq`` is gap-free and monotonic, the audit
log's hash chain is linear, and SQLite never sees two writers. Concurrent callers share a
commit (group commit): while one transaction commits, the next batch gathers in the queue.
A caller's ``submit`` returns only after its batch has committed, so an alarm is durable
before anybody acknowledges it.

The operations live by what they change (``event_ops``: events; ``outbox_ops``: the outbox
and the audit log), what they work with in ``batch``; this module re-exports them, so
``from hub.store.writer import UpdateEvent`` keeps working for the rest of the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from hub.store.audit import GENESIS
from hub.store.batch import BatchRows, Operation, OutboxMessage, WriteContext, dumps, iso, now_utc
from hub.store.event_ops import (
    PRIOR_COLUMNS,
    PendingEvent,
    StoredEvent,
    StoreEvent,
    UnknownEvent,
    UpdateEvent,
    event_runs,
)
from hub.store.fastpath import SqliteFastPath, fast_url
from hub.store.models import AuditLog, Event, StoreLock
from hub.store.outbox_ops import Audit, EnqueueMessage, MarkPublished, MarkReceipted, PruneOutbox
from hub.tasks import stop_task

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The change could not be committed; the caller must not acknowledge it."""


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


__all__ = [
    "PRIOR_COLUMNS",
    "Audit",
    "BatchRows",
    "CommitListener",
    "EnqueueMessage",
    "MarkPublished",
    "MarkReceipted",
    "Operation",
    "OutboxListener",
    "OutboxMessage",
    "PendingEvent",
    "PruneOutbox",
    "StoreEvent",
    "StoreUnavailable",
    "StoreWriter",
    "StoredEvent",
    "UnknownEvent",
    "UpdateEvent",
    "WriteContext",
    "dumps",
    "event_runs",
    "is_bad_input",
    "iso",
    "now_utc",
]
