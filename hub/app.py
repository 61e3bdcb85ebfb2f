"""The hub application: composes store, ingest, police link, drivers and web.

Every long-lived part is an async context manager entered on one ``AsyncExitStack``; leaving
the stack stops them in reverse order: drivers stop accepting first, in-flight commits finish,
the police link says "offline", the store closes last.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from adapters.device_event import DeviceEvent
from hub.bus import EventBus
from hub.config import SiteConfig
from hub.ingest import Ingest
from hub.maintenance import Maintenance
from hub.police.link import CommandError, PoliceLink
from hub.site import SiteIndex
from hub.store import StoreWriter, create_engine, safe_url, upgrade
from hub.store.writer import (
    Audit,
    Operation,
    StoredEvent,
    StoreEvent,
    UnknownEvent,
    UpdateEvent,
    iso,
    now_utc,
)

log = logging.getLogger(__name__)

STORE_STABLE_S = 2.0
"""How long the store must work again before an outage counts as over."""


class Hub:
    """One mall's hub. ``async with Hub(config) as hub: await hub.serve_forever()``."""

    def __init__(self, config: SiteConfig, *, extra_parts: list[Any] | None = None) -> None:
        self.config = config
        self.index = SiteIndex(config)
        self.bus = EventBus()
        self.started_at: datetime = now_utc()
        self.engine = create_engine(config.storage.url())
        self.writer = StoreWriter(self.engine)
        self.ingest = Ingest(config, self.index, self.writer)
        self.police = PoliceLink(config, self.engine, self.writer, started_at=self.started_at)
        self.prefix = config.topic_prefix
        self._stack = AsyncExitStack()
        self._extra = extra_parts or []
        self.parts: dict[str, Any] = {}
        self.writer.add_listener(self._publish_to_bus)
        self.writer.on_health_change = self._store_health
        self._store_failed_at: datetime | None = None
        self._store_error = ""
        self._store_recovery: asyncio.TimerHandle | None = None
        self.police.register("ack", self._cmd_ack)

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            log.info("store: %s", safe_url(self.config.storage.url()))
            await upgrade(self.engine)
            stack.push_async_callback(self.engine.dispose)
            await stack.enter_async_context(self.writer)
            await stack.enter_async_context(self.police)
            self.parts["maintenance"] = await stack.enter_async_context(Maintenance(self.writer))
            for part in self._extra:
                await stack.enter_async_context(part)
            await self._start_drivers(stack)
            await self._start_services(stack)
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start_drivers(self, stack: AsyncExitStack) -> None:
        """Start the device drivers the config asks for."""
        from hub.drivers import start_drivers

        await start_drivers(self, stack)

    async def _start_services(self, stack: AsyncExitStack) -> None:
        """Start the parts that work on stored events and device states.

        Each part registers itself in ``self.parts`` under its name; they talk to each other
        through the bus and the store, never by calling each other directly.
        """
        from hub.health.service import HealthService
        from hub.metrics import Metrics

        metrics = Metrics()
        metrics.attach(self)
        self.parts["metrics"] = metrics
        self.parts["health"] = await stack.enter_async_context(HealthService(self, metrics=metrics))
        await self._start_compliance(stack)
        # The console starts before linkage so snapshot URLs can name its real address; it
        # looks the other parts up per request.
        from hub.web import WebService

        self.parts["web"] = await stack.enter_async_context(WebService(self))
        from hub.linkage.service import start_linkage

        await start_linkage(self, stack)
        from hub.notices.service import start_notices

        await start_notices(self, stack)
        await self._start_gb28181(stack)

    async def _start_gb28181(self, stack: AsyncExitStack) -> None:
        """The GB/T 28181 uplink, when configured: after linkage (PTZ, acknowledging)."""
        gb = self.config.police.gb28181
        if gb is None or not gb.enabled:
            return
        from hub.police.gb28181 import GbUplink, LinkStateRecorder, ptz_through

        health = self.parts["health"]

        async def acknowledge(event_id: str) -> None:
            await self.acknowledge(event_id, by="police (GB/T 28181)", via="police")

        recorder = LinkStateRecorder(self.submit, self.ingest.ingest, gb)
        uplink = GbUplink(
            self.config,
            stream_uris=self.index.stream_uris,
            device_states=health.states,
            acknowledge=acknowledge,
            ptz=ptz_through(self.parts["linkage"].cameras),
            on_link_state=recorder.record,
            bus=self.bus,
        )
        self.parts["gb28181"] = await stack.enter_async_context(uplink)

    async def _start_compliance(self, stack: AsyncExitStack) -> None:
        from hub.compliance import ComplianceService, LinkFacts

        link = self.police

        async def link_facts() -> LinkFacts:
            pending, oldest = await link.outbox_stats()
            s = link.state
            return LinkFacts(
                s.connected, s.last_receipt_at, pending, oldest, self.config.police.receipts
            )

        service = ComplianceService(self.config, self.engine, self.writer, link_facts)
        service.add_listener(lambda result: self.bus.publish("compliance", result))
        self.parts["compliance"] = await stack.enter_async_context(service)
        link.register("compliance", service.republish)

    async def serve_forever(self) -> None:
        await asyncio.Event().wait()

    # --- store helpers used by the parts ---------------------------------------------------

    async def submit(self, op: Operation) -> Any:
        return await self.writer.submit(op)

    async def store_event(self, op: StoreEvent) -> StoredEvent:
        result: StoredEvent = await self.writer.submit(op)
        return result

    async def update_event(
        self,
        event_id: str,
        changes: dict[str, Any],
        *,
        actor: str = "hub",
        audit_action: str | None = None,
    ) -> dict[str, Any]:
        """Record a change to an event and queue the update message for the police."""
        result: dict[str, Any] = await self.writer.submit(
            UpdateEvent(
                event_id,
                f"{self.prefix}/updates",
                self.config.site.id,
                changes,
                actor=actor,
                audit_action=audit_action,
            )
        )
        return result

    async def audit(self, actor: str, action: str, subject: str, **detail: Any) -> None:
        await self.writer.submit(Audit(actor, action, subject, dict(detail)))

    async def acknowledge(
        self, event_id: str, *, by: str, via: str, note: str | None = None
    ) -> dict[str, Any]:
        """Acknowledge an event (idempotent for an event that is already past ``new``).

        The alarm lifecycle owns the transition (checked inside the store's transaction).
        """
        result: dict[str, Any] = await self.parts["lifecycle"].acknowledge(
            event_id, by=by, via=via, note=note
        )
        return result

    async def _cmd_ack(self, body: dict[str, Any]) -> dict[str, Any]:
        event_id = body.get("event_id")
        by = body.get("by")
        note = body.get("note")
        if not isinstance(event_id, str) or not event_id:
            raise CommandError("invalid", "event_id (string) is required")
        if not isinstance(by, str) or not by:
            raise CommandError("invalid", "by (string) is required")
        if note is not None and not isinstance(note, str):
            raise CommandError("invalid", "note must be a string")
        try:
            return await self.acknowledge(event_id, by=by[:128], via="police", note=note)
        except UnknownEvent as exc:
            raise CommandError("not_found", f"no event {event_id}") from exc

    def _publish_to_bus(self, pairs: Any) -> None:
        for op, result in pairs:
            if isinstance(op, StoreEvent) and isinstance(result, StoredEvent):
                if not result.duplicate:
                    self.bus.publish("event", result)
            elif isinstance(op, UpdateEvent):
                self.bus.publish("update", result)

    def _store_health(self, healthy: bool, error: str) -> None:
        """The store failed or works again (called inside the writer's task).

        While it fails nothing can be stored, so devices get no acknowledgement and keep
        their events; the failure is logged at once. A nearly full or flaky disk lets some
        commits through between failures, so recovery counts only once the store has
        worked for ``STORE_STABLE_S``: then ``fault.store`` (dated when the failure began)
        and its restore are stored and forwarded like any other event, once per outage.
        """
        if not healthy:
            if self._store_recovery is not None:
                self._store_recovery.cancel()  # the same outage goes on
                self._store_recovery = None
            if self._store_failed_at is None:
                self._store_failed_at = now_utc()
                self._store_error = error.splitlines()[0][:200] if error else "unknown error"
                log.error("hub: store failing, nothing is acknowledged: %s", self._store_error)
            return
        if self._store_failed_at is not None and self._store_recovery is None:
            self._store_recovery = asyncio.get_running_loop().call_later(
                STORE_STABLE_S, self._store_recovered
            )

    def _store_recovered(self) -> None:
        self._store_recovery = None
        since, self._store_failed_at = self._store_failed_at or now_utc(), None
        log.warning("hub: store works again (failing since %s)", iso(since))
        detail: dict[str, Any] = {"error": self._store_error, "since": iso(since)}
        for kind, at in (("fault.store", since), ("fault.store.restore", now_utc())):
            event = DeviceEvent("hub", kind, at, source={"component": "store"}, detail=detail)
            fut = self.writer.submit_nowait(StoreEvent(self.ingest.prepare(event)))
            fut.add_done_callback(_log_store_fault_failure)


def _log_store_fault_failure(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("hub: could not store the store fault: %s", fut.exception())
