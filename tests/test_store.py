"""The store: one transaction per ingest (event + outbox + audit), gap-free seq under
concurrency with shared commits, dedupe of resends, the audit hash chain, and failure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.device_event import DeviceEvent
from hub.config import SiteConfig
from hub.ingest import Ingest
from hub.site import SiteIndex
from hub.store import StoreUnavailable, StoreWriter, create_engine, upgrade
from hub.store.audit import verify_chain
from hub.store.db import current_revision, head_revision
from hub.store.models import AuditLog, Event, Outbox
from tests.support.sites import make_site


def press(zone_device: str = "btn-gate-1", key: str | None = None) -> DeviceEvent:
    return DeviceEvent(
        device_id=zone_device,
        kind="alarm.panic",
        occurred_at=datetime.now(UTC),
        source={"protocol": "sia-dc09", "format": "ADM-CID", "account": "1234", "zone": 15},
        dedupe_key=key,
    )


StoreFixture = tuple[SiteConfig, AsyncEngine, StoreWriter, Ingest]


SqliteFile = tuple[SiteConfig, AsyncEngine]


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> AsyncIterator[SqliteFile]:
    """A migrated SQLite file store (where the writer's fast path applies) and its site."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    cfg = make_site(broker_url="mqtt://127.0.0.1:1", data_dir=tmp_path, database_url=url)
    engine = create_engine(url)
    await upgrade(engine)
    yield cfg, engine
    await engine.dispose()


@pytest.fixture(params=["fast", "general"])
async def store(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[StoreFixture]:
    """Each store test runs on both writer paths: SQLite's one-hop fast path for alarms and
    publication marks, and the general async path (PostgreSQL's only one)."""
    if request.param == "fast" and not database_url.startswith("sqlite"):
        pytest.skip("the fast path is SQLite's; PostgreSQL runs the general path")
    cfg = make_site(broker_url="mqtt://127.0.0.1:1", data_dir=tmp_path, database_url=database_url)
    engine = create_engine(database_url)
    await upgrade(engine)
    writer = StoreWriter(engine, fast=request.param == "fast")
    assert (writer.fast is not None) == (request.param == "fast")
    async with writer:
        yield cfg, engine, writer, Ingest(cfg, SiteIndex(cfg), writer)
    await engine.dispose()


async def test_migrations_reach_head_and_are_idempotent(store: StoreFixture) -> None:
    _, engine, _, _ = store
    assert await current_revision(engine) == head_revision()
    await upgrade(engine)  # a second run changes nothing and does not fail
    assert await current_revision(engine) == head_revision()


async def test_ingest_writes_event_outbox_and_audit_together(store: StoreFixture) -> None:
    cfg, engine, _, ingest = store
    stored = await ingest.ingest(press())
    async with engine.connect() as c:
        ev = (await c.execute(select(Event).where(Event.event_id == stored.event_id))).one()
        ob = (await c.execute(select(Outbox).where(Outbox.event_id == stored.event_id))).one()
        audits = (await c.execute(select(AuditLog))).all()
    assert ev.seq == 1 and ev.kind == "alarm.panic" and ev.priority == 1
    assert ob.topic == f"mallhub/v1/{cfg.site.id}/events/alarm"
    assert ob.published_at is None
    body = json.loads(ob.payload)
    assert body["seq"] == 1 and body["event_id"] == stored.event_id
    assert body["device"]["location"] == {"floor": "1F", "zone": "main-gate", "role": "gate"}
    assert body["cameras"] == [{"id": "cam-gate-1", "stream_uri": None}]
    assert [a.action for a in audits] == ["event.stored"]


async def test_concurrent_ingests_share_commits_and_seq_has_no_gap(store: StoreFixture) -> None:
    _, engine, writer, ingest = store
    results = await asyncio.gather(*(ingest.ingest(press()) for _ in range(500)))
    seqs = sorted(r.seq for r in results)
    assert seqs == list(range(1, 501))
    # Group commit: far fewer transactions than events.
    assert writer.commits < 500
    async with engine.connect() as c:
        assert (await c.execute(select(func.count()).select_from(Outbox))).scalar() == 500


async def test_a_resent_frame_is_one_event(store: StoreFixture) -> None:
    _, engine, _, ingest = store
    first = await ingest.ingest(press(key="1234|0007|abc"))
    again = await asyncio.gather(*(ingest.ingest(press(key="1234|0007|abc")) for _ in range(3)))
    assert all(a.event_id == first.event_id and a.duplicate for a in again)
    other = await ingest.ingest(press(key="1234|0008|abc"))
    assert other.event_id != first.event_id and other.seq == first.seq + 1
    async with engine.connect() as c:
        assert (await c.execute(select(func.count()).select_from(Event))).scalar() == 2


async def test_audit_chain_verifies_and_detects_tampering(store: StoreFixture) -> None:
    _, engine, _, ingest = store
    for _ in range(5):
        await ingest.ingest(press())
    verdict = await verify_chain(engine)
    assert verdict.ok and verdict.rows == 5
    async with engine.begin() as c:
        third = (await c.execute(select(AuditLog.id).order_by(AuditLog.id).offset(2))).scalar()
        await c.execute(update(AuditLog).where(AuditLog.id == third).values(actor="mallory"))
    verdict = await verify_chain(engine)
    assert not verdict.ok and verdict.first_bad_id == third


async def test_writer_restart_continues_seq_and_chain(database_url: str, tmp_path: Path) -> None:
    cfg = make_site(broker_url="mqtt://127.0.0.1:1", data_dir=tmp_path, database_url=database_url)
    engine = create_engine(database_url)
    await upgrade(engine)
    for round_ in range(2):
        async with StoreWriter(engine) as writer:
            ingest = Ingest(cfg, SiteIndex(cfg), writer)
            got = [await ingest.ingest(press()) for _ in range(3)]
            assert [g.seq for g in got] == [1 + 3 * round_, 2 + 3 * round_, 3 + 3 * round_]
    assert (await verify_chain(engine)).ok
    await engine.dispose()


async def test_failed_commit_raises_and_nothing_is_half_stored(sqlite_file: SqliteFile) -> None:
    cfg, engine = sqlite_file
    async with StoreWriter(engine) as writer:
        ingest = Ingest(cfg, SiteIndex(cfg), writer)
        await ingest.ingest(press())
        # Make every insert into the outbox fail: the event must not be stored either.
        async with engine.begin() as c:
            await c.execute(
                text(
                    "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox "
                    "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
                )
            )
        with pytest.raises(StoreUnavailable):
            await ingest.ingest(press())
        assert not writer.healthy
        async with engine.begin() as c:
            await c.execute(text("DROP TRIGGER no_outbox"))
        after = await ingest.ingest(press())
        assert after.seq == 2  # the failed attempt consumed no seq
        assert writer.healthy
    async with engine.connect() as c:
        assert (await c.execute(select(func.count()).select_from(Event))).scalar() == 2


async def test_delivered_outbox_rows_are_pruned_but_events_stay(store: StoreFixture) -> None:
    from datetime import timedelta

    from hub.maintenance import Maintenance
    from hub.store.writer import MarkPublished

    _, engine, writer, ingest = store
    a = await ingest.ingest(press())
    b = await ingest.ingest(press())
    async with engine.connect() as c:
        ids = list((await c.execute(select(Outbox.id).order_by(Outbox.id))).scalars())
    await writer.submit(MarkPublished([ids[0]], [a.event_id]))
    m = Maintenance(writer, keep=timedelta(seconds=0))
    assert await m.run_once() == 1  # only the delivered one
    async with engine.connect() as c:
        left = list((await c.execute(select(Outbox.event_id))).scalars())
        events = (await c.execute(select(func.count()).select_from(Event))).scalar()
    assert left == [b.event_id] and events == 2


async def test_two_writers_keep_seq_and_audit_chain_linear(store: StoreFixture) -> None:
    # An operator's CLI writes records while the hub runs: two writers, one store.
    cfg, engine, _, ingest = store
    async with StoreWriter(engine) as other:
        other_ingest = Ingest(cfg, SiteIndex(cfg), other)
        from hub.store.writer import Audit

        results = await asyncio.gather(
            *(ingest.ingest(press()) for _ in range(50)),
            *(other_ingest.ingest(press()) for _ in range(50)),
            *(other.submit(Audit("cli", "record.added", f"r{i}")) for i in range(20)),
        )
    seqs = sorted(r.seq for r in results if r is not None)
    assert seqs == list(range(1, 101))
    verdict = await verify_chain(engine)
    assert verdict.ok and verdict.rows == 120


async def test_bad_values_in_an_operation_are_its_error_not_a_store_failure(
    store: StoreFixture,
) -> None:
    from datetime import timedelta

    from hub.store.models import Record
    from hub.store.writer import WriteContext

    _, _, writer, ingest = store

    class OutOfRange:
        async def apply(self, ctx: WriteContext) -> None:
            _ = datetime.min.replace(tzinfo=UTC) - timedelta(days=1)

    class WrongType:
        async def apply(self, ctx: WriteContext) -> None:
            ctx.session.add(
                Record(kind="drill", at="yesterday", title="x", created_by="t", detail={})
            )
            await ctx.session.flush()

    with pytest.raises(OverflowError):
        await writer.submit(OutOfRange())
    with pytest.raises(Exception) as info:
        await writer.submit(WrongType())
    assert not isinstance(info.value, StoreUnavailable)
    assert writer.healthy  # the store did not fail, and the next event is stored as usual
    assert (await ingest.ingest(press())).seq == 1


async def test_alarms_and_marks_take_the_fast_path_other_writes_the_general_one(
    sqlite_file: SqliteFile,
) -> None:
    from hub.store.writer import Audit, MarkPublished

    cfg, engine = sqlite_file
    async with StoreWriter(engine) as writer:
        ingest = Ingest(cfg, SiteIndex(cfg), writer)
        a = await ingest.ingest(press())
        assert writer.fast_commits == 1
        await writer.submit(MarkPublished([1], [a.event_id]))
        assert writer.fast_commits == 2
        await writer.submit(Audit("operator", "record.added", "r1"))
        assert writer.fast_commits == 2 and writer.commits == 3
    assert (await verify_chain(engine)).ok


async def test_both_writer_paths_write_the_same_rows_and_read_each_others(
    tmp_path: Path,
) -> None:
    """A store is the same file whichever path wrote it: identical column values (types,
    datetime and JSON text), resends recognised across paths, one audit chain."""
    import sqlite3

    from hub.store.writer import MarkPublished

    db = tmp_path / "hub.db"
    url = f"sqlite+aiosqlite:///{db}"
    cfg = make_site(broker_url="mqtt://127.0.0.1:1", data_dir=tmp_path, database_url=url)
    engine = create_engine(url)
    await upgrade(engine)
    at = datetime(2026, 11, 24, 8, 30, 15, 123456, tzinfo=UTC)

    def same_press(key: str) -> DeviceEvent:
        return DeviceEvent(
            device_id="btn-gate-1",
            kind="alarm.panic",
            occurred_at=at,
            source={"protocol": "sia-dc09", "account": "1234", "zone": 15, "note": "大门"},
            dedupe_key=key,
        )

    stored = []
    for fast in (True, False):
        async with StoreWriter(engine, fast=fast) as writer:
            assert (writer.fast is not None) is fast
            ingest = Ingest(cfg, SiteIndex(cfg), writer)
            got = await ingest.ingest(same_press(f"k-{fast}"))
            stored.append(got)
            await writer.submit(MarkPublished([got.seq], [got.event_id], at))
    # A resend of each, through the *other* path, is recognised as the same event.
    for fast, first in ((False, stored[0]), (True, stored[1])):
        async with StoreWriter(engine, fast=fast) as writer:
            again = await Ingest(cfg, SiteIndex(cfg), writer).ingest(same_press(f"k-{not fast}"))
            assert again.duplicate and (again.event_id, again.seq) == (first.event_id, first.seq)
            assert again.message == first.message
    assert (await verify_chain(engine)).ok
    await engine.dispose()

    raw = sqlite3.connect(db)
    raw.row_factory = sqlite3.Row
    events = [dict(r) for r in raw.execute("SELECT * FROM events ORDER BY seq")]
    outbox = [dict(r) for r in raw.execute("SELECT * FROM outbox ORDER BY id")]
    audit = [dict(r) for r in raw.execute("SELECT * FROM audit_log ORDER BY id")]
    raw.close()
    assert len(events) == 2 and len(outbox) == 2 and len(audit) == 2
    for rows, differ in (
        (events, {"id", "event_id", "seq", "dedupe_key", "message", "received_at"}),
        (outbox, {"id", "event_id", "seq", "payload", "created_at"}),
        (audit, {"id", "at", "subject", "detail", "prev_hash", "hash"}),
    ):
        fast_row, general_row = ({k: v for k, v in r.items() if k not in differ} for r in rows)
        assert fast_row == general_row
        assert {k: type(v) for k, v in rows[0].items()} == {k: type(v) for k, v in rows[1].items()}
    assert events[0]["occurred_at"] == "2026-11-24 08:30:15.123456"
    assert events[0]["first_published_at"] == "2026-11-24 08:30:15.123456"
    assert json.loads(events[0]["source"])["note"] == "大门"
    for e in events:  # the message differs only by its own ids
        m = json.loads(e["message"])
        assert m["seq"] == e["seq"] and m["event_id"] == e["event_id"]
    for r in (events, outbox, audit):
        for col in ("received_at", "created_at", "at"):
            if col in r[0]:
                assert len(r[0][col]) == len(r[1][col]) == 26


async def test_a_mixed_batch_commits_in_runs_and_keeps_the_queue_order(
    sqlite_file: SqliteFile,
) -> None:
    from hub.store.writer import Audit

    cfg, engine = sqlite_file
    async with StoreWriter(engine) as writer:
        ingest = Ingest(cfg, SiteIndex(cfg), writer)
        # Queued together, so the writer takes them as one batch.
        await asyncio.gather(
            ingest.ingest(press()),
            ingest.ingest(press()),
            writer.submit(Audit("operator", "record.added", "r1")),
            ingest.ingest(press()),
        )
        assert (writer.commits, writer.fast_commits) == (3, 2)
    async with engine.connect() as c:
        actions = list((await c.execute(select(AuditLog.action).order_by(AuditLog.id))).scalars())
    assert actions == ["event.stored", "event.stored", "record.added", "event.stored"]
    assert (await verify_chain(engine)).ok
