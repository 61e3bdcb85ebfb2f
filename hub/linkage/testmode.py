"""Test mode for commissioning and monthly checks.

A technician puts a device (``device:<id>``) or a zone (``zone:<zone>``) into test mode for a
limited time. Meanwhile alarms from it are stored and forwarded as ``info.test`` (the ingest
converts them, see ``hub.ingest``), never as real alarms, and count as the device's test for
ALM-TESTED. Test mode ends by itself at its ``until`` time; every start, stop and expiry is in
the audit log.

Entries live in the ``test_mode`` table. ``mallhub testmode`` (another process) changes it
through its own store writer; the hub re-reads the table every ``alarms.test_mode_poll_s``.
An entry whose start or end has no audit record (a change made to the table by other means)
is audited when the hub notices it (actor ``cli``). ``is_active`` is answered from memory and
compares ``until`` with the clock, so expiry is exact even between two polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Literal, Self

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from hub.config import SiteConfig
from hub.site import SiteIndex
from hub.store.models import AuditLog, TestMode
from hub.store.writer import WriteContext, iso, now_utc
from hub.tasks import stop_task

log = logging.getLogger(__name__)

TargetKind = Literal["device", "zone"]
STARTED: Final = "testmode.started"
STOPPED: Final = "testmode.stopped"
EXPIRED: Final = "testmode.expired"
#: Ended entries are still checked for a missing audit record this long afterwards.
RECENT = timedelta(days=1)


class TestModeError(ValueError):
    """A test mode request that cannot be honoured (unknown target, too long, ...)."""

    __test__ = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One test mode entry."""

    __test__ = False

    id: int
    target: str
    started_at: datetime
    until: datetime
    by: str
    ended_at: datetime | None = None

    @property
    def kind(self) -> str:
        return self.target.partition(":")[0]

    @property
    def name(self) -> str:
        return self.target.partition(":")[2]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "started_at": iso(self.started_at),
            "until": iso(self.until),
            "by": self.by,
            "ended_at": iso(self.ended_at) if self.ended_at else None,
        }

    @classmethod
    def of(cls, row: TestMode) -> Entry:
        return cls(row.id, row.target, row.started_at, row.until, row.by, row.ended_at)


def subject(entry_id: int) -> str:
    return f"testmode:{entry_id}"


def resolve_target(config: SiteConfig, index: SiteIndex, target: str) -> str:
    """``device:<id>`` / ``zone:<zone>`` (a bare name is looked up: device first, then zone)."""
    kind, sep, name = target.partition(":")
    if not sep:
        kind, name = ("device" if target in index.devices else "zone"), target
    if kind == "device":
        if name not in index.devices:
            raise TestModeError(f"no device {name!r} in the site configuration")
    elif kind == "zone":
        zones = {d.location.zone for d in index.devices.values() if d.location is not None}
        if name not in zones:
            raise TestModeError(f"no zone {name!r} in the site configuration")
    else:
        raise TestModeError("a target is device:<id> or zone:<zone>")
    return f"{kind}:{name}"


def check_minutes(config: SiteConfig, minutes: float) -> timedelta:
    limit = config.alarms.test_mode_max_minutes
    if not 0 < minutes <= limit:
        raise TestModeError(f"test mode lasts more than 0 and at most {limit:g} minutes")
    return timedelta(minutes=minutes)


# --- store operations (run inside the hub's writer) -------------------------------------------


@dataclass(slots=True)
class StartTestMode:
    target: str
    duration: timedelta
    by: str
    via: str

    async def apply(self, ctx: WriteContext) -> Entry:
        row = TestMode(
            target=self.target,
            started_at=ctx.now,
            until=ctx.now + self.duration,
            by=self.by[:128],
            ended_at=None,
        )
        ctx.session.add(row)
        await ctx.session.flush()
        entry = Entry.of(row)
        ctx.audit(
            f"{self.via}:{self.by[:128]}",
            STARTED,
            subject(entry.id),
            {"target": entry.target, "until": iso(entry.until), "via": self.via},
        )
        return entry


@dataclass(slots=True)
class EndTestMode:
    """End entries (stopped by a person, or expired); already ended ones are left alone."""

    ids: list[int]
    action: str
    actor: str
    via: str

    async def apply(self, ctx: WriteContext) -> list[Entry]:
        rows = (
            await ctx.session.execute(
                select(TestMode).where(TestMode.id.in_(self.ids), TestMode.ended_at.is_(None))
            )
        ).scalars()
        ended = []
        for row in rows:
            row.ended_at = min(ctx.now, row.until) if self.action == EXPIRED else ctx.now
            ended.append(Entry.of(row))
            ctx.audit(
                self.actor,
                self.action,
                subject(row.id),
                {"target": row.target, "started_by": row.by, "via": self.via},
            )
        return ended


@dataclass(slots=True)
class AuditNoticed:
    """Audit changes somebody made to the table without an audit record (once each)."""

    records: list[tuple[str, int, dict[str, Any]]]

    async def apply(self, ctx: WriteContext) -> None:
        for action, entry_id, detail in self.records:
            done = await ctx.session.scalar(
                select(AuditLog.id)
                .where(AuditLog.subject == subject(entry_id), AuditLog.action == action)
                .limit(1)
            )
            if done is None:
                ctx.audit("cli", action, subject(entry_id), detail)


# --- the manager ------------------------------------------------------------------------------


class TestModeManager:
    """Test mode entries: start, stop, list, expiry. An async context manager."""

    __test__ = False

    def __init__(
        self,
        config: SiteConfig,
        index: SiteIndex,
        engine: AsyncEngine,
        submit: Callable[[Any], Any],
        *,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.config = config
        self.index = index
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._submit = submit
        self.clock = clock
        self.poll_s = config.alarms.test_mode_poll_s
        self._entries: dict[int, Entry] = {}
        self._audited_seen: set[tuple[str, int]] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.synced = 0
        """How many times the table has been read (tests wait on it)."""

    async def __aenter__(self) -> Self:
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="testmode")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    # --- queries (synchronous: the ingest asks on every alarm) ----------------------------

    def active(self) -> list[Entry]:
        now = self.clock()
        return sorted((e for e in self._entries.values() if e.until > now), key=lambda e: e.until)

    def is_active(self, device_id: str) -> bool:
        """Is the device in test mode (itself, its panel, or its zone)?"""
        now = self.clock()
        live = [e for e in self._entries.values() if e.until > now]
        if not live:
            return False
        info = self.index.devices.get(device_id)
        targets = {f"device:{device_id}"}
        if info is not None:
            if info.parent is not None:
                targets.add(f"device:{info.parent}")
            if info.location is not None:
                targets.add(f"zone:{info.location.zone}")
        return any(e.target in targets for e in live)

    # --- changes -------------------------------------------------------------------------

    async def start(self, target: str, minutes: float, *, by: str, via: str = "console") -> Entry:
        """Put a device or zone into test mode for ``minutes`` (audited)."""
        resolved = resolve_target(self.config, self.index, target)
        duration = check_minutes(self.config, minutes)
        if not by.strip():
            raise TestModeError("say who starts test mode (by)")
        async with self._lock:
            entry: Entry = await self._submit(StartTestMode(resolved, duration, by.strip(), via))
            self._entries[entry.id] = entry
            self._audited_seen.add((STARTED, entry.id))
        self._wake.set()
        log.info("%s: test mode until %s (by %s)", resolved, iso(entry.until), by)
        return entry

    async def stop(self, target: str | int, *, by: str, via: str = "console") -> list[Entry]:
        """End test mode for an entry id or a target now (audited); returns what ended."""
        async with self._lock:
            if isinstance(target, int):
                ids = [target] if target in self._entries else []
            else:
                resolved = resolve_target(self.config, self.index, target)
                ids = [e.id for e in self._entries.values() if e.target == resolved]
            ended: list[Entry] = []
            if ids:
                ended = await self._submit(EndTestMode(ids, STOPPED, f"{via}:{by[:128]}", via))
            for e in ended:
                self._entries.pop(e.id, None)
                self._audited_seen.add((STOPPED, e.id))
        self._wake.set()
        return ended

    # --- keeping up with the table and the clock -----------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock()
            wait_s = self.poll_s
            for e in self._entries.values():
                wait_s = min(wait_s, max(0.0, (e.until - now).total_seconds()))
            try:
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            try:
                await self.sync()
            except Exception:
                # The store may be briefly unavailable; the next poll tries again.
                log.exception("test mode: could not read the test_mode table")

    async def sync(self) -> None:
        """Expire what is due, audit what the command line changed, and reload the table."""
        async with self._lock:
            now = self.clock()
            async with self.sessions() as s:
                rows = list(
                    (
                        await s.execute(
                            select(TestMode).where(
                                or_(TestMode.ended_at.is_(None), TestMode.ended_at > now - RECENT)
                            )
                        )
                    ).scalars()
                )
                # The audit log has no index on subject: ask only about entries whose
                # records have not been seen yet (steady state: none).
                unknown = [
                    r.id
                    for r in rows
                    if (STARTED, r.id) not in self._audited_seen
                    or (
                        r.ended_at is not None
                        and (STOPPED, r.id) not in self._audited_seen
                        and (EXPIRED, r.id) not in self._audited_seen
                    )
                ]
                self._audited_seen |= await self._audited(s, unknown)
                audited = self._audited_seen
            expired = [r.id for r in rows if r.ended_at is None and r.until <= now]
            noticed: list[tuple[str, int, dict[str, Any]]] = []
            for r in rows:
                if (STARTED, r.id) not in audited:
                    noticed.append(
                        (STARTED, r.id, {"target": r.target, "until": iso(r.until), "via": "cli"})
                    )
                if r.ended_at is not None and not ({(STOPPED, r.id), (EXPIRED, r.id)} & audited):
                    noticed.append(
                        (STOPPED, r.id, {"target": r.target, "started_by": r.by, "via": "cli"})
                    )
            if noticed:
                await self._submit(AuditNoticed(noticed))
                self._audited_seen |= {(action, entry_id) for action, entry_id, _ in noticed}
            if expired:
                for e in await self._submit(EndTestMode(expired, EXPIRED, "hub", "hub")):
                    self._audited_seen.add((EXPIRED, e.id))
                    log.info("%s: test mode expired", e.target)
            self._entries = {
                r.id: Entry.of(r) for r in rows if r.ended_at is None and r.until > now
            }
            self.synced += 1

    @staticmethod
    async def _audited(session: Any, ids: Iterable[int]) -> set[tuple[str, int]]:
        subjects = [subject(i) for i in ids]
        if not subjects:
            return set()
        found = await session.execute(
            select(AuditLog.action, AuditLog.subject).where(
                AuditLog.subject.in_(subjects), AuditLog.action.in_((STARTED, STOPPED, EXPIRED))
            )
        )
        return {(action, int(subj.partition(":")[2])) for action, subj in found}
