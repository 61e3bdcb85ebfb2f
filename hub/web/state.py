"""What the web application keeps between requests: the parts of the hub it uses
(:class:`WebDeps`), sessions, throttles, the live fan-out to open consoles."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.store.writer import iso
from hub.web.auth import LoginGuard, SessionStore
from hub.web.replycache import ReplyCache

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from hub.bus import EventBus
    from hub.compliance.engine import ComplianceService
    from hub.config import SiteConfig
    from hub.health.service import HealthService
    from hub.linkage.lifecycle import Lifecycle
    from hub.linkage.testmode import TestModeManager
    from hub.metrics import Metrics
    from hub.notices.service import NoticeService
    from hub.police.status import LinkStatus
    from hub.site import SiteIndex
    from hub.store.recorder import Recorder
    from hub.store.writer import Operation, StoreWriter
    from hub.web.share import ConsoleShare

log = logging.getLogger(__name__)

#: Messages a slow console may fall behind before it is told to reload.
CLIENT_QUEUE = 256


def jsonable(value: Any) -> Any:
    """Bus message bodies (dicts, dataclasses, datetimes) → JSON-ready values."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return jsonable(to_json())
    return str(value)


@dataclass(slots=True, eq=False)
class LiveClient:
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    overflowed: bool = False


@dataclass(slots=True)
class LiveFanout:
    """Hands each bus message, as one SSE-ready JSON line, to every open console."""

    clients: set[LiveClient] = field(default_factory=set)
    sent: int = 0
    overflows: int = 0

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, **data}, ensure_ascii=False, separators=(",", ":"))
        for c in list(self.clients):
            if c.overflowed:
                continue
            try:
                c.queue.put_nowait(line)
                self.sent += 1
            except asyncio.QueueFull:
                # A console that cannot keep up is told to reload rather than shown a
                # silently incomplete picture.
                c.overflowed = True
                self.overflows += 1
                with contextlib.suppress(asyncio.QueueEmpty):
                    c.queue.get_nowait()
                c.queue.put_nowait(json.dumps({"type": "resync"}))

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[LiveClient]:
        client = LiveClient()
        self.clients.add(client)
        try:
            yield client
        finally:
            self.clients.discard(client)

    def close_all(self) -> None:
        for c in self.clients:
            with contextlib.suppress(asyncio.QueueFull):
                c.queue.put_nowait(None)


@dataclass(slots=True)
class WebDeps:
    """What the console and the API use of the rest of the hub, given by ``hub.app``."""

    config: SiteConfig
    engine: AsyncEngine
    """For reads; every write goes through ``recorder``."""
    index: SiteIndex
    recorder: Recorder
    bus: EventBus
    link: LinkStatus
    health: HealthService
    compliance: ComplianceService
    lifecycle: Lifecycle
    testmode: TestModeManager
    metrics: Metrics
    notices: NoticeService | None = None
    """Set by ``hub.app`` once the notices service has started (after the console)."""
    share: ConsoleShare | None = None
    """Alarms first: the console's reads take turns while the alarm path is busy."""

    @property
    def writer(self) -> StoreWriter:
        return self.recorder.writer

    async def submit(self, op: Operation) -> Any:
        return await self.recorder.submit(op)

    async def audit(self, actor: str, action: str, subject: str, **detail: Any) -> None:
        await self.recorder.audit(actor, action, subject, **detail)


@dataclass(slots=True)
class WebState:
    deps: WebDeps
    tls: bool
    openapi: dict[str, Any] = field(default_factory=dict)
    """The OpenAPI document of the routes this app serves."""
    sessions: SessionStore = field(default_factory=SessionStore)
    guard: LoginGuard = field(default_factory=LoginGuard)
    live: LiveFanout = field(default_factory=LiveFanout)
    token_touched: dict[int, float] = field(default_factory=dict)
    snapshot_secret: bytes | None = None
    stopping: bool = False
    replies: ReplyCache = field(default_factory=ReplyCache)
    """Answers kept between requests (metrics, devices, compliance)."""


STATE: web.AppKey[WebState] = web.AppKey("mallhub_web", WebState)


def state_of(request: web.Request) -> WebState:
    return request.app[STATE]
