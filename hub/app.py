"""The composition root: builds every part of one mall's hub with the collaborators it uses,
and starts them in order.

No service imports this module (the CLI, the demo and tests do). Each service is given what
it needs, by name and type: the store writer (or a :class:`~hub.store.recorder.Recorder`
over it), the event bus, the site index, the config, the police link's status, the command
registry, the running drivers. The wiring, in start order (``AsyncExitStack``; leaving it
stops them in reverse: drivers stop accepting first, in-flight commits finish, the police
link says "offline", the store closes last)::

    store (engine, writer) ─┬─ ingest ◀── drivers (SIA receiver, camera events)
                            ├─ police link ◀── commands (ack, probe, snapshot, compliance)
                            └─ maintenance
    metrics ◀── writer, index, ingest, link state and refusals, SIA receiver, compliance
    health ◀── writer, ingest, index, bus, link status, commands, drivers, metrics
    compliance ◀── writer, link facts; pokes from health; results onto the bus
    web ◀── WebDeps (config, engine, index, recorder, bus, link status, health,
                     compliance, lifecycle, test mode, metrics, the console's share
                     (alarms first: ingest's activity, metrics))
    test mode ◀── writer; ingest asks it whether a device is under test
    lifecycle ◀── recorder, bus; answers ack
    linkage ◀── recorder, bus, ingest, index, commands, the console's URL
    notices ◀── writer, index, linkage's cameras and snapshots, compliance; answers
                inspect and notice; handed to the web once started
    GB/T 28181 uplink (when configured) ◀── config, stream URIs, device states, bus,
                     lifecycle (ResetAlarm acknowledges), linkage's cameras (PTZ)

A new service is built and entered here, after what it uses; a new police command is one
``commands.register`` by the service that carries it out; something that must see every
new event as soon as it is committed (an uplink to another platform) adds itself to
``event_stored``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from adapters.alarm_panels import SiaReceiver
from adapters.device_event import DeviceEvent
from hub.bus import EventBus
from hub.commands import CommandRegistry
from hub.compliance import ComplianceService, LinkFacts
from hub.config import SiteConfig
from hub.drivers import Drivers, start_drivers
from hub.health.service import HealthService
from hub.ingest import Ingest
from hub.linkage.lifecycle import Lifecycle
from hub.linkage.service import LinkageService
from hub.linkage.testmode import TestModeManager
from hub.maintenance import Maintenance
from hub.metrics import Metrics
from hub.notices.service import NoticeService
from hub.police.link import PoliceLink
from hub.site import SiteIndex
from hub.store import StoreWriter, create_engine, safe_url, upgrade
from hub.store.recorder import Recorder
from hub.store.writer import (
    Operation,
    StoredEvent,
    StoreEvent,
    UpdateEvent,
    iso,
    now_utc,
)
from hub.web import WebService
from hub.web.share import ConsoleShare
from hub.web.state import WebDeps

if TYPE_CHECKING:
    from hub.police.gb28181 import GbUplink

log = logging.getLogger(__name__)

STORE_STABLE_S = 2.0
GC_THRESHOLDS = (2_000, 25, 100)
"""The collector's thresholds once the hub has started (see :func:`settle_heap`)."""
"""How long the store must work again before an outage counts as over."""

StoredListener = Callable[[StoredEvent], None]
"""Called with each new (not duplicate) event right after its commit, in the writer's task:
it must not block (hand the event to a queue of your own)."""


class Hub:
    """One mall's hub. ``async with Hub(config) as hub: await hub.serve_forever()``.

    After entering, every part is an attribute with its own type (``hub.health``,
    ``hub.web``, ``hub.lifecycle``…), for the CLI, the demo and tests.
    """

    drivers: Drivers
    maintenance: Maintenance
    health: HealthService
    compliance: ComplianceService
    web: WebService
    linkage: LinkageService
    notices: NoticeService
    gb28181: GbUplink | None = None
    """The GB/T 28181 uplink (``police.gb28181``), when enabled."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.index = SiteIndex(config)
        self.bus = EventBus()
        self.started_at: datetime = now_utc()
        self.engine = create_engine(config.storage.url())
        self.writer = StoreWriter(self.engine)
        self.prefix = config.topic_prefix
        self.recorder = Recorder(self.writer, self.prefix, config.site.id)
        self.ingest = Ingest(config, self.index, self.writer)
        self.commands = CommandRegistry()
        self.police = PoliceLink(
            config, self.engine, self.writer, started_at=self.started_at, commands=self.commands
        )
        self.event_stored: list[StoredListener] = []
        """Hooks for every new event once committed (see :data:`StoredListener`)."""
        self.writer.add_listener(self._publish_to_bus)
        self.writer.on_health_change = self._store_health
        self._store_failed_at: datetime | None = None
        self._store_error = ""
        self._store_recovery: asyncio.TimerHandle | None = None
        self._stack = AsyncExitStack()
        self._gc_before: tuple[int, int, int] | None = None
        # Built now, started later: the console is given them before they start, and the
        # police link may send ``ack`` as soon as it is up.
        self.metrics = Metrics()
        self.testmode = TestModeManager(config, self.index, self.engine, self.writer.submit)
        self.lifecycle = Lifecycle(config, self.recorder, self.bus)
        self.commands.register("ack", self.lifecycle.cmd_ack)

    @property
    def sia(self) -> SiaReceiver:
        """The SIA DC-09 receiver; LookupError when the config has no alarm panels."""
        if self.drivers.sia is None:
            raise LookupError("no SIA receiver: the config has no alarm panels")
        return self.drivers.sia

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            log.info("store: %s", safe_url(self.config.storage.url()))
            await upgrade(self.engine)
            stack.push_async_callback(self.engine.dispose)
            await stack.enter_async_context(self.writer)
            await stack.enter_async_context(self.police)
            self.maintenance = await stack.enter_async_context(Maintenance(self.writer))
            self.drivers = await start_drivers(self.config, self.ingest, stack)
            await self._start_services(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._gc_before = settle_heap()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._stack.aclose()
        finally:
            if self._gc_before is not None:
                # A process that outlives its hub (the demo, tests) collects it normally.
                gc.unfreeze()
                gc.set_threshold(*self._gc_before)
                self._gc_before = None

    async def _start_services(self, stack: AsyncExitStack) -> None:
        """Start the parts that work on stored events and device states."""
        cfg = self.config
        self.metrics.attach(
            self.writer,
            self.index,
            self.ingest,
            self.police.state,
            self.police.inbox.rejections.counts,
            self.drivers.sia,
        )
        self.health = await stack.enter_async_context(
            HealthService(
                cfg,
                engine=self.engine,
                writer=self.writer,
                ingest=self.ingest,
                index=self.index,
                bus=self.bus,
                link=self.police,
                commands=self.commands,
                drivers=self.drivers,
                metrics=self.metrics,
            )
        )
        self.compliance = await stack.enter_async_context(self._compliance())
        self.commands.register("compliance", self.compliance.republish)
        self.metrics.set_compliance(self.compliance)
        self.health.add_change_listener(self.compliance.poke)
        # The console starts before linkage so snapshot URLs can name its real address.
        self.web = await stack.enter_async_context(
            WebService(
                WebDeps(
                    config=cfg,
                    engine=self.engine,
                    index=self.index,
                    recorder=self.recorder,
                    bus=self.bus,
                    link=self.police,
                    health=self.health,
                    compliance=self.compliance,
                    lifecycle=self.lifecycle,
                    testmode=self.testmode,
                    metrics=self.metrics,
                    share=ConsoleShare(
                        cfg.http.console_share,
                        self.ingest.activity.busy,
                        max_wait_s=cfg.http.console_max_wait_s,
                        on_wait=self.metrics.observe_console_wait,
                    ),
                )
            )
        )
        await stack.enter_async_context(self.testmode)
        self.ingest.in_test_mode = self.testmode.is_active
        await stack.enter_async_context(self.lifecycle)
        self.linkage = await stack.enter_async_context(
            LinkageService(
                cfg,
                index=self.index,
                recorder=self.recorder,
                bus=self.bus,
                ingest=self.ingest,
                commands=self.commands,
                web_url=self.web.url,
            )
        )
        assert self.linkage.snapshots is not None  # the linkage service has started
        self.notices = await stack.enter_async_context(
            NoticeService(
                cfg,
                self.index,
                self.engine,
                self.writer.submit,
                pictures=self.linkage.cameras,
                snapshots=self.linkage.snapshots,
                compliance=self.compliance,
            )
        )
        self.commands.register("inspect", self.notices.cmd_inspect)
        self.commands.register("notice", self.notices.cmd_notice)
        self.web.deps.notices = self.notices
        await self._start_gb28181(stack)

    async def _start_gb28181(self, stack: AsyncExitStack) -> None:
        """The GB/T 28181 uplink, when configured: after linkage (PTZ, acknowledging)."""
        gb = self.config.police.gb28181
        if gb is None or not gb.enabled:
            return
        # Imported only when configured: most hubs have no uplink, and its SIP, MANSCDP and
        # PS-muxing modules need not load at every start.
        from hub.police.gb28181 import GbUplink, LinkStateRecorder, ptz_through

        lifecycle = self.lifecycle

        async def acknowledge(event_id: str) -> None:
            await lifecycle.acknowledge(event_id, by="police (GB/T 28181)", via="police")

        recorder = LinkStateRecorder(self.writer.submit, self.ingest.ingest, gb)
        self.gb28181 = await stack.enter_async_context(
            GbUplink(
                self.config,
                stream_uris=self.index.stream_uris,
                device_states=self.health.states,
                acknowledge=acknowledge,
                ptz=ptz_through(self.linkage.cameras),
                on_link_state=recorder.record,
                bus=self.bus,
            )
        )

    def _compliance(self) -> ComplianceService:
        link = self.police
        receipts = self.config.police.receipts

        async def link_facts() -> LinkFacts:
            pending, oldest = await link.outbox_stats()
            s = link.state
            return LinkFacts(s.connected, s.last_receipt_at, pending, oldest, receipts)

        service = ComplianceService(self.config, self.engine, self.writer, link_facts)
        service.add_listener(lambda result: self.bus.publish("compliance", result))
        return service

    async def serve_forever(self) -> None:
        await asyncio.Event().wait()

    # --- store helpers for the CLI, the demo and tests ------------------------------------

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
        return await self.recorder.update_event(
            event_id, changes, actor=actor, audit_action=audit_action
        )

    async def audit(self, actor: str, action: str, subject: str, **detail: Any) -> None:
        await self.recorder.audit(actor, action, subject, **detail)

    async def acknowledge(
        self, event_id: str, *, by: str, via: str, note: str | None = None
    ) -> dict[str, Any]:
        """Acknowledge an event (idempotent for an event that is already past ``new``).

        The alarm lifecycle owns the transition (checked inside the store's transaction).
        """
        return await self.lifecycle.acknowledge(event_id, by=by, via=via, note=note)

    def _publish_to_bus(self, pairs: Any) -> None:
        for op, result in pairs:
            if isinstance(op, StoreEvent) and isinstance(result, StoredEvent):
                if not result.duplicate:
                    self.bus.publish("event", result)
                    for listener in self.event_stored:
                        listener(result)
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


def settle_heap() -> tuple[int, int, int]:
    """Keep garbage collection off the alarm path: called once everything has started.

    By then the heap holds what the hub keeps for its whole life (modules, the config, the
    ORM's and pydantic's machinery, the drivers): hundreds of thousands of objects that a
    full collection would walk every time, stalling every alarm in flight for 60–300 ms on
    this hardware. ``gc.freeze`` moves them to the permanent generation, which collections
    skip, so a full collection walks only what was made since. The garbage made during
    start-up is collected first, or it would be kept for ever. Returns the thresholds before.
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return before


def _log_store_fault_failure(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("hub: could not store the store fault: %s", fut.exception())
