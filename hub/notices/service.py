"""The notices part of the hub: answers the police's ``inspect`` and ``notice`` commands,
serves the console (list, answer with evidence), and watches deadlines.

It works with narrow collaborators: the store (engine and submit), a way to take pictures and
file them as evidence, the compliance service (to re-evaluate after a change) and the audit
log. Nothing here calls the police link: commands are registered on it by name, and every
message for the police leaves through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from adapters.errors import AdapterError
from hub.commands import CommandError
from hub.config import SiteConfig
from hub.events import uuid7
from hub.linkage.devices import CAMERA_CONNECT_TIMEOUT_S, CAMERA_TIMEOUT_S
from hub.linkage.snapshots import SnapshotStore, sniff_content_type
from hub.notices.inspect import Inspection, Pictures, parse_request, take_picture
from hub.notices.model import (
    MAX_TEXT,
    OPEN_STATES,
    IssueRequest,
    NoticeError,
    NoticeView,
    next_state,
    notice_id_of,
    parse_command,
)
from hub.notices.store import (
    AnswerNotice,
    Changed,
    DecideNotice,
    IssueNotice,
    MarkOverdue,
    load_view,
    load_views,
)
from hub.site import SiteIndex
from hub.store.models import DeviceState, Notice
from hub.store.writer import Audit, Operation, iso, now_utc
from hub.tasks import stop_task

log = logging.getLogger(__name__)

WATCH_EVERY_S = 60.0
MAX_EVIDENCE_CAMERAS = 8
MAX_EVIDENCE_DEVICES = 32


class Compliance(Protocol):
    async def evaluate_now(self, *, force_store: bool = False) -> Any: ...


class NoticeService:
    """``async with NoticeService(...)``: the deadline watcher runs while inside."""

    def __init__(
        self,
        config: SiteConfig,
        index: SiteIndex,
        engine: AsyncEngine,
        submit: Callable[[Operation], Awaitable[Any]],
        *,
        pictures: Pictures,
        snapshots: SnapshotStore,
        compliance: Compliance,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.config = config
        self.index = index
        self.engine = engine
        self.submit = submit
        self.pictures = pictures
        self.snapshots = snapshots
        self.compliance = compliance
        self.clock = clock
        self.site_id = config.site.id
        self.prefix = config.topic_prefix
        # A camera not yet connected needs its ONVIF set-up first; the pool bounds both.
        self.camera_timeout_s = CAMERA_CONNECT_TIMEOUT_S + CAMERA_TIMEOUT_S
        self.inspections = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._watch(), name="notices-deadlines")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._task)
        self._task = None

    # --- police commands -------------------------------------------------------------------

    async def cmd_inspect(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``inspect`` command: evidence of the whole mall, as one checklist."""
        try:
            req = parse_request(body, self.site_id, self.snapshots.inline_max_bytes)
        except NoticeError as exc:
            raise CommandError(exc.code, exc.message) from None
        inspection_id = str(uuid7())
        inspection = Inspection(
            self.config,
            self.index,
            self.engine,
            self.pictures,
            self.snapshots,
            lambda: self.compliance.evaluate_now(),
            clock=self.clock,
            camera_timeout_s=self.camera_timeout_s,
        )
        result = await inspection.run(inspection_id, req)
        self.inspections += 1
        cameras = [i for i in result["items"] if i["kind"] == "camera"]
        officer = (req.officer or {}).get("name", "police")
        await self.submit(
            Audit(
                f"police:{officer}"[:128],
                "inspection.answered",
                f"inspection:{inspection_id}",
                {
                    "cameras": len(cameras),
                    "pictures": sum(1 for i in cameras if "snapshot" in i),
                    "overall": result["compliance"]["overall"],
                },
            )
        )
        return result

    async def cmd_notice(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``notice`` command: issue, accept or reject."""
        rid = body.get("request_id")
        op: Operation
        try:
            req = parse_command(body, self.site_id, self.clock())
            if isinstance(req, IssueRequest):
                op = IssueNotice(
                    req, self.prefix, self.site_id, rid if isinstance(rid, str) else None
                )
            else:
                op = DecideNotice(req, self.prefix, self.site_id)
            changed: Changed = await self.submit(op)
        except NoticeError as exc:
            raise CommandError(exc.code, exc.message) from None
        if changed.changed:
            await self._after_change()
        return changed.result()

    # --- the console -----------------------------------------------------------------------

    async def list(self, *, open_only: bool = False) -> list[NoticeView]:
        async with AsyncSession(self.engine) as session:
            return await load_views(session, open_only=open_only)

    async def get(self, notice_id: str) -> NoticeView | None:
        async with AsyncSession(self.engine) as session:
            return await load_view(session, notice_id)

    async def counts(self) -> dict[str, int]:
        """Open and overdue notices now (for the console's banner)."""
        now = self.clock()
        views = await self.list(open_only=True)
        return {
            "open": len(views),
            "overdue": sum(1 for v in views if v.overdue(now)),
            "answered": sum(1 for v in views if v.state == "answered"),
        }

    async def answer(
        self,
        notice_id: str,
        *,
        by: str,
        actor: str,
        note: str,
        cameras: Sequence[str] = (),
        devices: Sequence[str] = (),
    ) -> Changed:
        """The mall's answer: a note, fresh snapshots of ``cameras`` and the states of
        ``devices``. Nothing is stored when a picture cannot be taken or the notice does
        not accept an answer now."""
        notice_id_of({"notice_id": notice_id})
        if not note.strip() or len(note) > MAX_TEXT:
            raise NoticeError("invalid", f"note must be 1-{MAX_TEXT} characters")
        view = await self.get(notice_id)
        if view is None:
            raise NoticeError("not_found", f"no notice {notice_id}")
        if view.state not in OPEN_STATES or view.state == "answered":
            # Checked again inside the store's transaction; this spares the cameras.
            next_state(view.state, "answer", notice_id)
        camera_ids = list(dict.fromkeys(cameras))
        device_ids = list(dict.fromkeys(devices))
        if len(camera_ids) > MAX_EVIDENCE_CAMERAS or len(device_ids) > MAX_EVIDENCE_DEVICES:
            raise NoticeError("invalid", "too many cameras or devices as evidence")
        known_cams = {c.id for c in self.config.devices.cameras}
        for cid in camera_ids:
            if cid not in known_cams:
                raise NoticeError("invalid", f"no camera {cid}")
        for did in device_ids:
            if did not in self.index.devices:
                raise NoticeError("invalid", f"no device {did}")
        capture_id = str(uuid7())
        snaps = await asyncio.gather(*(self._picture(capture_id, c) for c in camera_ids))
        async with self.engine.connect() as conn:
            rows = {
                r.device_id: r
                for r in (
                    await conn.execute(
                        select(DeviceState).where(DeviceState.device_id.in_(device_ids))
                    )
                ).all()
            }
        states = []
        for did in device_ids:
            row = rows.get(did)
            states.append(
                {
                    "device_id": did,
                    "state": row.state if row is not None else "unknown",
                    "since": iso(row.since) if row is not None else None,
                }
            )
        evidence: dict[str, Any] = {"snapshots": list(snaps), "devices": states}
        changed: Changed = await self.submit(
            AnswerNotice(
                notice_id,
                by,
                actor,
                note.strip(),
                evidence,
                prefix=self.prefix,
                site_id=self.site_id,
            )
        )
        await self._after_change()
        return changed

    async def _picture(self, capture_id: str, camera_id: str) -> dict[str, Any]:
        try:
            data = await take_picture(self.pictures, camera_id, self.camera_timeout_s)
        except (AdapterError, TimeoutError) as exc:
            raise NoticeError(
                "unavailable", f"{camera_id}: no picture ({exc or 'timed out'})"
            ) from exc
        content_type = sniff_content_type(data)
        if content_type is None:
            raise NoticeError("unavailable", f"{camera_id}: the camera sent no picture")
        snap = await self.snapshots.save(capture_id, camera_id, data, content_type, self.clock())
        item = self.snapshots.attachment(snap, data, inline_max_bytes=-1)
        item["snapshot_id"] = snap.id
        return item

    # --- deadlines ---------------------------------------------------------------------------

    async def _after_change(self) -> None:
        self._wake.set()
        try:
            await self.compliance.evaluate_now()
        except Exception:  # the notice is stored; the next evaluation catches up
            log.exception("compliance evaluation after a notice change failed")

    async def check_deadlines(self) -> datetime | None:
        """Mark notices whose deadline passed; return the next deadline still ahead."""
        now = self.clock()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Notice.notice_id, Notice.deadline, Notice.overdue_published).where(
                        Notice.state.in_(("open", "rejected"))
                    )
                )
            ).all()
        marked = False
        ahead: datetime | None = None
        for notice_id, deadline, published in rows:
            if deadline <= now:
                if not published:
                    marked |= bool(
                        await self.submit(MarkOverdue(notice_id, self.prefix, self.site_id, now))
                    )
            elif ahead is None or deadline < ahead:
                ahead = deadline
        if marked:
            with contextlib.suppress(Exception):
                await self.compliance.evaluate_now()
        return ahead

    async def _watch(self) -> None:
        while True:
            wait = WATCH_EVERY_S
            try:
                ahead = await self.check_deadlines()
                if ahead is not None:
                    wait = min(wait, max(0.05, (ahead - self.clock()).total_seconds()))
            except asyncio.CancelledError:
                raise
            except Exception:  # a supervisor: try again next round
                log.exception("notice deadline check failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
