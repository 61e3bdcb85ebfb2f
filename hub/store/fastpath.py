"""The writer's fast path on SQLite: the hot operations of a batch in one hop to one thread.

Storing an alarm and recording what was published are nearly all the store's writes. Going
through the async ORM costs a thread hop and a trip through SQLAlchemy's statement
machinery for every statement; here the whole transaction (lock, heads, duplicate lookup,
the inserts, the commit) is one call on a plain ``sqlite3`` connection in the writer's own
thread. Everything else (operator actions, health, compliance) keeps the general path.

The rows are written exactly as SQLAlchemy writes them for SQLite (naive UTC datetimes as
``YYYY-MM-DD HH:MM:SS.ffffff``, JSON through ``json.dumps``, booleans as 0/1), so both paths
read each other's rows, and the store is the same file whichever path wrote it. One
exception, for speed: an event's ``message`` is the very text of its outbox payload
(compact, UTF-8 JSON, serialised once), which reads back as the same value.

The connection comes from a small synchronous SQLAlchemy engine on the same file, so the
engine's ``connect`` and ``checkout`` events apply here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import JSON, Boolean, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.types import TypeEngine

from hub.store.audit import GENESIS
from hub.store.batch import BatchRows, Operation, OutboxMessage
from hub.store.event_ops import PRIOR_COLUMNS, StoredEvent, StoreEvent, event_runs
from hub.store.models import AuditLog, Base, Event, Outbox, UtcDateTime
from hub.store.outbox_ops import MarkPublished

FAST_OPS: Final = (StoreEvent, MarkPublished)

# SQLite allows 32 766 host parameters per statement (since 3.32); stay well below.
_CHUNK: Final = 500


def fast_url(url: str | URL) -> URL | None:
    """The synchronous URL of a SQLite *file* store, or None where the fast path does not
    apply (PostgreSQL, an in-memory database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return parsed.set(drivername="sqlite+pysqlite")


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The same durability as the general path (see hub.store.db): WAL, fsync on commit.
    dbapi_conn.isolation_level = None  # transactions are begun and ended explicitly
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _dt(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use aware UTC datetimes")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _read_dt(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _json(value: Any) -> str:
    # SQLAlchemy's JSON type serialises with json.dumps' defaults; so do we.
    return json.dumps(value)


def _same(value: Any) -> Any:
    return value


def _converter(column_type: TypeEngine[Any]) -> Callable[[Any], Any]:
    """How SQLAlchemy's SQLite dialect binds a value of this column type."""
    if isinstance(column_type, UtcDateTime):
        return _dt
    if isinstance(column_type, JSON):
        return _json
    if isinstance(column_type, Boolean):
        return int
    return _same


class _Insert:
    """An INSERT of rows as the planners gather them (dicts keyed by column name), each value
    bound as the general path would bind it, chosen by the column's type in the model."""

    def __init__(
        self, model: type[Base], columns: Sequence[str], verbatim: frozenset[str] = frozenset()
    ) -> None:
        marks = ", ".join("?" for _ in columns)
        self.sql = f"INSERT INTO {model.__tablename__} ({', '.join(columns)}) VALUES ({marks})"
        table = model.__table__
        self._binds = tuple(
            (c, _same if c in verbatim else _converter(table.c[c].type)) for c in columns
        )

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(bind(row[c]) for c, bind in self._binds)


_EVENT_COLUMNS: Final = (
    "event_id",
    "seq",
    "kind",
    "category",
    "priority",
    "device_id",
    "occurred_at",
    "received_at",
    "source",
    "detail",
    "device_state",
    "dedupe_key",
    "test_mode",
    "state",
    "update_seq",
    "message",
)
_OUTBOX_COLUMNS: Final = (
    "kind",
    "topic",
    "payload",
    "retain",
    "priority",
    "seq",
    "event_id",
    "coalesce_key",
    "created_at",
    "publish_count",
    "receipt_required",
)
_AUDIT_COLUMNS: Final = ("at", "actor", "action", "subject", "detail", "prev_hash", "hash")

# An event's message is bound as the text of its outbox payload, serialised once.
_INSERT_EVENT: Final = _Insert(Event, _EVENT_COLUMNS, verbatim=frozenset({"message"}))
_INSERT_OUTBOX: Final = _Insert(Outbox, _OUTBOX_COLUMNS)
_INSERT_AUDIT: Final = _Insert(AuditLog, _AUDIT_COLUMNS)
_INSERT_OUTBOX_MANY: Final = (
    f"INSERT INTO outbox ({', '.join(_OUTBOX_COLUMNS)}) VALUES {{}} RETURNING id"
)
_LOCK: Final = "UPDATE store_lock SET id = 1 WHERE id = 1"
_HEADS: Final = (
    "SELECT (SELECT max(seq) FROM events), (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1)"
)
_PRIOR: Final = "SELECT {} FROM events WHERE dedupe_key IN ({{}})".format(
    ", ".join(c.key for c in PRIOR_COLUMNS)
)


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


class SqliteFastPath:
    """Commits batches made only of ``StoreEvent`` and ``MarkPublished`` in one thread hop."""

    def __init__(self, url: URL) -> None:
        self.engine: Engine = create_engine(url, pool_size=1, max_overflow=0)
        event.listen(self.engine, "connect", _pragmas)
        # One thread: the pool's sqlite3 connection is created and used only there.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-fast")

    @staticmethod
    def handles(ops: Sequence[Operation]) -> bool:
        return all(isinstance(op, FAST_OPS) for op in ops)

    async def commit(
        self, ops: Sequence[Operation], now: datetime
    ) -> tuple[list[Any], list[OutboxMessage], int, str]:
        """Run the batch in one transaction; returns (results, new outbox messages, seq head,
        audit head). Raises what sqlite3 raises; nothing is committed then."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._commit, list(ops), now)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.engine.dispose()

    def _commit(
        self, ops: list[Operation], now: datetime
    ) -> tuple[list[Any], list[OutboxMessage], int, str]:
        with self.engine.connect() as sa_conn:
            raw = sa_conn.connection.dbapi_connection
            assert isinstance(raw, sqlite3.Connection)
            cur = raw.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                out = self._transaction(cur, ops, now)
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return out

    def _transaction(
        self, cur: sqlite3.Cursor, ops: list[Operation], now: datetime
    ) -> tuple[list[Any], list[OutboxMessage], int, str]:
        # As on the general path: the store lock first, then the heads inside the
        # transaction, since another process may have written since our last commit.
        cur.execute(_LOCK)
        seq, head = cur.execute(_HEADS).fetchone()
        rows_ctx = BatchRows(now, int(seq or 0), head or GENESIS)
        results: list[Any] = []
        for step in event_runs(ops):
            if isinstance(step, list):
                results.extend(self._store_events(cur, rows_ctx, step))
            else:
                assert isinstance(step, MarkPublished)
                self._mark_published(cur, step, now)
                results.append(None)
        audit, outbox = rows_ctx.take_rows()
        if audit:
            cur.executemany(_INSERT_AUDIT.sql, [_INSERT_AUDIT.params(r) for r in audit])
        ids = _insert_outbox(cur, outbox)
        return results, BatchRows.messages(ids, outbox), rows_ctx.seq, rows_ctx.audit_head

    @staticmethod
    def _store_events(
        cur: sqlite3.Cursor, rows_ctx: BatchRows, group: list[StoreEvent]
    ) -> list[StoredEvent]:
        keys = sorted({op.event.dedupe_key for op in group if op.event.dedupe_key is not None})
        known: dict[str, StoredEvent] = {}
        for part in _chunks(keys):
            sql = _PRIOR.format(", ".join("?" for _ in part))
            for ev_id, seq, kind, cat, prio, dev, rec, msg, key in cur.execute(sql, tuple(part)):
                prior = StoredEvent(
                    ev_id, seq, kind, cat, prio, dev, _read_dt(rec), json.loads(msg), True
                )
                StoreEvent.remember(known, prior, key)
        results, rows = StoreEvent.plan(rows_ctx, group, known)
        if rows:
            texts = {
                o["event_id"]: o["payload"] for o in rows_ctx.pending_outbox if o["kind"] == "event"
            }
            ins = _INSERT_EVENT
            cur.executemany(
                ins.sql, [ins.params({**r, "message": texts[r["event_id"]]}) for r in rows]
            )
        return results

    @staticmethod
    def _mark_published(cur: sqlite3.Cursor, op: MarkPublished, now: datetime) -> None:
        at = _dt(op.at or now)
        _update_in(
            cur,
            "UPDATE outbox SET published_at = ?, publish_count = publish_count + 1 WHERE id IN",
            at,
            op.outbox_ids,
        )
        _update_in(
            cur,
            "UPDATE events SET first_published_at = ?"
            " WHERE first_published_at IS NULL AND event_id IN",
            at,
            op.event_ids,
        )


def _insert_outbox(cur: sqlite3.Cursor, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the outbox rows with one statement per chunk; their ids in row order.

    Inside the writer's ``BEGIN IMMEDIATE`` nobody else inserts, and SQLite gives each new
    row of an ``INTEGER PRIMARY KEY`` table the largest id so far plus one, so the rows of
    one statement get ascending ids in the order of their VALUES: the sorted ids returned
    are the rows' ids in order. One statement instead of one per row.
    """
    ids: list[int] = []
    ins = _INSERT_OUTBOX
    per_row = len(_OUTBOX_COLUMNS)
    for part in _chunks(rows):
        values = ", ".join([f"({', '.join('?' * per_row)})"] * len(part))
        params = [v for r in part for v in ins.params(r)]
        got = sorted(r[0] for r in cur.execute(_INSERT_OUTBOX_MANY.format(values), params))
        if len(got) != len(part) or got[-1] - got[0] != len(part) - 1:
            # Not one run of ids (an id space exhausted): nothing is committed, the batch
            # fails and its rows are committed one by one.
            raise sqlite3.IntegrityError("outbox ids of one insert are not consecutive")
        ids.extend(got)
    return ids


def _update_in(cur: sqlite3.Cursor, head: str, value: Any, keys: Sequence[Any]) -> None:
    """``{head} (?, …)`` with ``value`` as the first parameter, in chunks of keys."""
    for part in _chunks(list(keys)):
        marks = ", ".join("?" for _ in part)
        cur.execute(f"{head} ({marks})", (value, *part))
