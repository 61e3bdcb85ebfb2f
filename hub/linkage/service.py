"""The linkage service: on a stored event, run the actions of every rule it matches.

Forward first, enrich after: the service reads committed events from the bus, so an alarm
has already been stored and queued for the police before any camera or loudspeaker is
touched. All actions of all matching rules run side by side. What is done when the linkage
budget (``compliance.linkage_budget_s`` after the alarm was received) runs out is published at
once as one update of the event (snapshots and outcomes); whatever finishes later (retries, a
slow controller) follows in a second update. A failed action raises a fault event on the
device it drove: ``fault.broadcast`` for a broadcast controller, ``fault.linkage`` otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from adapters.device_event import DeviceEvent
from adapters.errors import AdapterError
from hub.bus import Subscription
from hub.commands import CommandError
from hub.config import (
    BroadcastAction,
    LinkageRule,
    PtzAction,
    RelayAction,
    RenotifyAction,
    SiteConfig,
    SnapshotAction,
)
from hub.events import uuid7
from hub.linkage import actions
from hub.linkage.actions import Context, Outcome
from hub.linkage.devices import BroadcastPool, CameraPool
from hub.linkage.rules import EventFacts, parse_window, select_rules
from hub.linkage.snapshots import SnapshotStore, load_or_create_secret, sniff_content_type
from hub.store.models import Event
from hub.store.writer import StoredEvent, now_utc
from hub.tasks import stop_task

if TYPE_CHECKING:
    from hub.bus import EventBus
    from hub.commands import CommandRegistry
    from hub.ingest import Ingest
    from hub.site import SiteIndex
    from hub.store.recorder import Recorder

log = logging.getLogger(__name__)

#: ``source.protocol`` of the faults the linkage raises; such events never trigger linkage,
#: so a rule on ``fault.*`` cannot feed on its own failures.
LINKAGE_PROTOCOL = "linkage"
#: Actions that follow later by design and so are not part of the measured latency.
UNTIMED = frozenset({"renotify"})


class LinkageService:
    """Runs linkage rules on the events stored (from ``bus``); records each action's outcome
    on the event through ``recorder``; answers the ``snapshot`` command. ``web_url`` is the
    console's address, for snapshot links when ``http.public_url`` is not set."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        index: SiteIndex,
        recorder: Recorder,
        bus: EventBus,
        ingest: Ingest,
        commands: CommandRegistry,
        web_url: str | None = None,
        cameras: CameraPool | None = None,
        broadcast: BroadcastPool | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        cfg = config
        self.config = config
        self.index = index
        self.recorder = recorder
        self.bus = bus
        self.ingest = ingest
        self.commands = commands
        self.web_url = web_url
        self.rules: list[LinkageRule] = list(cfg.linkage)
        self.clock = clock
        self.cameras = cameras or CameraPool({c.id: c for c in cfg.devices.cameras})
        self.broadcast = broadcast or BroadcastPool({b.id: b for b in cfg.devices.broadcast})
        self.controllers = {b.id: b for b in cfg.devices.broadcast}
        try:
            self.tz: Any = ZoneInfo(cfg.site.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("unknown time zone %r: schedules use UTC", cfg.site.timezone)
            self.tz = ZoneInfo("UTC")
        self.budget = timedelta(seconds=cfg.compliance.linkage_budget_s)
        self.snapshots: SnapshotStore | None = None
        self.outcomes: dict[str, list[Outcome]] = {}
        """Every outcome recorded per alarm (event_id), for the console and tests."""
        self.latency_ms: dict[str, float] = {}
        """Per alarm: the slowest timed action's elapsed_ms, once all timed actions are done."""
        self.failures = 0
        self.warmed = asyncio.Event()
        self._stack = AsyncExitStack()
        self._task: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._sub: Subscription | None = None
        for rule in self.rules:
            if rule.match.schedule is not None:
                try:
                    parse_window(rule.match.schedule)
                except ValueError:
                    log.warning(
                        "linkage rule %s: schedule %r is not a valid time window; "
                        "the rule applies at all times",
                        rule.name,
                        rule.match.schedule,
                    )

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            cfg = self.config
            data_dir = cfg.storage.data_dir
            secret = await asyncio.to_thread(load_or_create_secret, data_dir)
            http = cfg.http
            public_url = http.public_url or self.web_url or f"http://{http.host}:{http.port}"
            if http.public_url is None:
                log.warning(
                    "http.public_url is not set: snapshots over %d bytes get URLs on %s, "
                    "which the police platform may not reach",
                    cfg.police.inline_snapshot_max_bytes,
                    public_url,
                )
            self.snapshots = SnapshotStore(
                data_dir,
                secret,
                self.recorder.submit,
                inline_max_bytes=cfg.police.inline_snapshot_max_bytes,
                public_url=public_url,
                url_ttl=timedelta(seconds=cfg.police.snapshot_url_ttl_s),
            )
            await stack.enter_async_context(self.cameras)
            await stack.enter_async_context(self.broadcast)
            # Subscribe before returning: no event stored from now on is missed.
            self._sub = await stack.enter_async_context(self.bus.subscribe("linkage"))
            self._task = asyncio.create_task(self._run(), name="linkage")
            self.commands.register("snapshot", self.cmd_snapshot)
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
        task, self._task = self._task, None
        try:
            await stop_task(task)
        finally:
            await self._stack.aclose()

    # --- the service task ----------------------------------------------------------------

    async def _run(self) -> None:
        assert self._sub is not None
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(self._warm(), name="linkage-warm")
            async for msg in self._sub:
                if msg.topic == "event" and isinstance(msg.body, StoredEvent):
                    self.on_event(msg.body)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        assert self._group is not None
        self._group.create_task(self._supervised(coro, name), name=name)

    @staticmethod
    async def _supervised(coro: Coroutine[Any, Any, None], name: str) -> None:
        # One alarm's linkage going wrong must never stop the service for the next alarm.
        try:
            await coro
        except Exception:
            log.exception("%s: linkage task failed", name)

    async def _warm(self) -> None:
        """Connect to every camera the rules use, so the first alarm finds them ready."""
        cameras: set[str] = set()
        for rule in self.rules:
            for action in rule.actions:
                if isinstance(action, SnapshotAction):
                    if action.cameras == "linked":
                        cameras.update(
                            c
                            for dev in self.index.devices.values()
                            if dev.type != "camera"
                            for c in self.index.linked_cameras(dev.id)
                        )
                    else:
                        cameras.update(action.cameras)
                elif isinstance(action, PtzAction | RelayAction):
                    cameras.add(action.camera)
        try:
            await asyncio.gather(*(self.cameras.warm(c) for c in sorted(cameras)))
        finally:
            self.warmed.set()

    # --- one event -----------------------------------------------------------------------

    async def cmd_snapshot(self, body: dict[str, Any]) -> dict[str, Any]:
        """The police ``snapshot`` command: a fresh picture from one camera, kept as evidence.

        The picture has no event, so it is filed under a capture id of its own (a UUIDv7)
        and answered as an attachment, inline or as a signed URL like an alarm's snapshots.
        """
        camera_id = body.get("camera_id")
        if not isinstance(camera_id, str) or not camera_id:
            raise CommandError("invalid", "camera_id (string) is required")
        if camera_id not in self.index.devices or camera_id not in {
            c.id for c in self.config.devices.cameras
        }:
            raise CommandError("not_found", f"no camera {camera_id}")
        assert self.snapshots is not None
        try:
            async with asyncio.timeout(self.config.health.probe_timeout_s):
                data = await self.cameras.snapshot(camera_id)
        except (AdapterError, TimeoutError) as exc:
            raise CommandError("unavailable", f"{camera_id}: {exc or 'timed out'}") from exc
        capture_id = str(uuid7())
        snap = await self.snapshots.save(
            capture_id, camera_id, data, sniff_content_type(data) or "image/jpeg", self.clock()
        )
        await self.recorder.audit("police", "snapshot.taken", camera_id, capture_id=capture_id)
        return {"capture_id": capture_id, "attachment": self.snapshots.attachment(snap, data)}

    def rules_for(self, event: StoredEvent) -> list[LinkageRule]:
        if event.device_id is None:
            return []
        source = event.message.get("source")
        if isinstance(source, dict) and source.get("protocol") == LINKAGE_PROTOCOL:
            return []
        facts = EventFacts(
            event.kind, event.priority, self.index.device(event.device_id), event.received_at
        )
        return select_rules(self.rules, facts, self.tz)

    def on_event(self, event: StoredEvent) -> None:
        rules = self.rules_for(event)
        if rules:
            self._spawn(self.link(event, rules), f"linkage-{event.event_id}")

    async def link(self, event: StoredEvent, rules: list[LinkageRule]) -> None:
        """Run every action of ``rules`` for ``event``; publish outcomes; raise faults."""
        assert self.snapshots is not None
        jobs: list[asyncio.Task[list[Outcome]]] = []
        async with asyncio.TaskGroup() as group:
            for rule in rules:
                ctx = Context(
                    event.event_id,
                    event.received_at,
                    rule.name,
                    rule.timeout_s,
                    rule.retries,
                    self.clock,
                )
                for n, action in enumerate(rule.actions):
                    if isinstance(action, RenotifyAction):
                        self._spawn(
                            self.renotify(event, ctx, action),
                            f"renotify-{event.event_id}-{rule.name}-{n}",
                        )
                        continue
                    for coro in self._action_jobs(event, ctx, action):
                        jobs.append(
                            group.create_task(coro, name=f"link-{event.event_id}-{rule.name}-{n}")
                        )
            if jobs:
                await self._publish_in_waves(event, jobs)

    def _action_jobs(
        self, event: StoredEvent, ctx: Context, action: Any
    ) -> list[Coroutine[Any, Any, list[Outcome]]]:
        assert self.snapshots is not None
        store = self.snapshots
        if isinstance(action, SnapshotAction):
            cams = (
                self.index.linked_cameras(event.device_id or "")
                if action.cameras == "linked"
                else list(action.cameras)
            )
            return [
                self._guard(
                    ctx,
                    [("snapshot", cam, cam)],
                    self._one(actions.snapshot(ctx, self.cameras, store, cam)),
                )
                for cam in cams
            ]
        if isinstance(action, PtzAction):
            return [
                self._guard(
                    ctx,
                    [("ptz_preset", action.camera, action.camera)],
                    self._one(actions.ptz_preset(ctx, self.cameras, action)),
                )
            ]
        if isinstance(action, RelayAction):
            target = f"{action.camera}/{action.relay}"
            return [
                self._guard(ctx, [("relay_pulse", target, action.camera)], self._relay(ctx, action))
            ]
        if isinstance(action, BroadcastAction):
            zones = actions.broadcast_zones(action, self.controllers[action.controller])
            ctrl = action.controller
            return [
                self._guard(
                    ctx,
                    [("broadcast", f"{ctrl}/{z}", ctrl) for z in zones],
                    actions.broadcast(ctx, self.broadcast, action, zones),
                )
            ]
        return []

    @staticmethod
    async def _one(coro: Coroutine[Any, Any, Outcome]) -> list[Outcome]:
        return [await coro]

    @staticmethod
    async def _guard(
        ctx: Context,
        targets: list[tuple[str, str, str]],
        coro: Coroutine[Any, Any, list[Outcome]],
    ) -> list[Outcome]:
        """A bug in one action becomes its failed outcome instead of losing the others'."""
        try:
            return await coro
        except Exception as exc:
            log.exception("%s: linkage action failed unexpectedly", targets[0][2])
            return [
                ctx.outcome(t, target, dev, False, f"internal error: {type(exc).__name__}", 1)
                for t, target, dev in targets
            ]

    async def _relay(self, ctx: Context, action: RelayAction) -> list[Outcome]:
        outcome = await actions.relay_on(ctx, self.cameras, action)
        if outcome.ok:
            self._spawn(self._release_later(action), f"relay-off-{action.camera}-{action.relay}")
        return [outcome]

    async def _release_later(self, action: RelayAction) -> None:
        try:
            await asyncio.sleep(action.seconds)
        finally:
            # Also when the hub stops meanwhile: a siren must not stay on.
            await asyncio.shield(actions.relay_off(self.cameras, action))

    async def _publish_in_waves(
        self, event: StoredEvent, jobs: list[asyncio.Task[list[Outcome]]]
    ) -> None:
        """Publish what is done by the budget at once, and the rest when it is done."""
        deadline = event.received_at + self.budget
        wait_s = max(0.0, (deadline - self.clock()).total_seconds())
        done, pending = await asyncio.wait(jobs, timeout=wait_s)
        if done and pending:
            await self._record(event, [o for t in done for o in t.result()], final=False)
        if pending:
            await asyncio.wait(pending)
            done = set(jobs)
        await self._record(event, [o for t in done for o in t.result()], final=True)

    async def _record(self, event: StoredEvent, outcomes: list[Outcome], *, final: bool) -> None:
        recorded = self.outcomes.setdefault(event.event_id, [])
        new = [o for o in outcomes if not any(o is r for r in recorded)]
        if not new:
            return
        recorded.extend(new)
        if final:
            timed = [o.elapsed_ms for o in recorded if o.type not in UNTIMED]
            if timed:
                self.latency_ms[event.event_id] = max(timed)
        changes: dict[str, Any] = {"linkage": [o.item() for o in new]}
        attachments = [o.attachment for o in new if o.attachment is not None]
        if attachments:
            changes["attachments"] = attachments
        await self.recorder.update_event(event.event_id, changes, actor="linkage")
        await self.recorder.audit(
            "linkage", "event.linkage", event.event_id, outcomes=changes["linkage"]
        )
        await self._raise_faults(event, [o for o in new if not o.ok])

    async def _raise_faults(self, event: StoredEvent, failed: list[Outcome]) -> None:
        by_device: dict[str, list[Outcome]] = {}
        for o in failed:
            by_device.setdefault(o.device_id, []).append(o)
        for device_id, items in by_device.items():
            self.failures += 1
            kind = "fault.broadcast" if items[0].type == "broadcast" else "fault.linkage"
            reasons = sorted({o.detail for o in items})
            fault = DeviceEvent(
                device_id,
                kind,
                self.clock(),
                source={
                    "protocol": LINKAGE_PROTOCOL,
                    "event_id": event.event_id,
                    "rule": items[0].rule,
                    "action": items[0].type,
                },
                dedupe_key=f"linkage:{event.event_id}:{device_id}:{kind}",
                detail={
                    "alarm_event_id": event.event_id,
                    "targets": [o.target for o in items],
                    "reason": "; ".join(reasons),
                },
            )
            try:
                await self.ingest.ingest(fault)
            except Exception:
                log.exception("%s: could not store the linkage fault", device_id)

    async def renotify(self, event: StoredEvent, ctx: Context, action: RenotifyAction) -> None:
        """Tell the police again when the alarm is still unacknowledged after ``after_s``."""
        due = event.received_at + timedelta(seconds=action.after_s)
        await asyncio.sleep(max(0.0, (due - self.clock()).total_seconds()))
        async with self.recorder.sessions() as s:
            state = await s.scalar(select(Event.state).where(Event.event_id == event.event_id))
        if state != "new":
            log.info("%s: %s, no re-notification needed", event.event_id, state)
            return
        outcome = ctx.outcome(
            "renotify",
            "police",
            event.device_id or "hub",
            True,
            f"still unacknowledged after {action.after_s:g} s",
            1,
        )
        self.outcomes.setdefault(event.event_id, []).append(outcome)
        await self.recorder.update_event(
            event.event_id, {"linkage": [outcome.item()]}, actor="linkage"
        )
