"""The health service: probes every device on a schedule and keeps its debounced state.

Each probe result is stored (``probes``); the device's state row (``device_state``) carries
its state, since when, why, when it was last seen and the probe details the compliance rules
read. A change of state is stored (``device_state_changes``), becomes an event through the
normal ingest path, updates the retained availability message for the police, and is put on
the bus (``device_state``).

Events for a change: → offline ``fault.device_offline``; offline → online
``info.device_online``; → degraded the fault that caused it (``fault.video_quality``,
``fault.video_loss``, ``fault.clock``, ``fault.device_degraded``) and degraded → online its
``.restore``. A device that starts ``unknown`` and turns out fine raises no event (only its
availability), or every restart would flood the police with "back online". Alarm panels raise
no events of their own: the SIA receiver already reports supervision loss and restore.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.broadcast import BroadcastDriver
from adapters.device_event import DeviceEvent
from adapters.onvif.driver import CameraProbe
from adapters.onvif.video import Baseline
from hub.commands import CommandError
from hub.config import AlarmPanel, BroadcastController, Camera, SiteConfig
from hub.drivers import broadcast_driver
from hub.health.camerawork import CameraWork, CameraWorker, InlineCameraWork, WorkerLost
from hub.health.events import transition_events
from hub.health.probes import (
    camera_result,
    panel_result,
    police_detail,
    probe_broadcast,
    subscription_findings,
)
from hub.health.results import ProbeResult
from hub.health.scheduler import Job, Scheduler, spread
from hub.health.state import DeviceHealth, State
from hub.health.store import (
    DOWNSAMPLE_AFTER,
    DOWNSAMPLE_BUCKET,
    Availability,
    DownsampleProbes,
    PruneProbes,
    RecordProbe,
    SaveBaseline,
    load_baselines,
    load_states,
    oldest_probe,
)
from hub.health.video import VideoOutcome
from hub.store.writer import iso, now_utc

if TYPE_CHECKING:
    from adapters.device_event import IngestFn
    from hub.bus import EventBus
    from hub.commands import CommandRegistry
    from hub.drivers import Drivers
    from hub.metrics import Metrics
    from hub.police.status import LinkStatus
    from hub.site import SiteIndex
    from hub.store.writer import StoreWriter

log = logging.getLogger(__name__)

POLICE_LINK_ID: Final = "police-link"
MAINTENANCE_EVERY_S: Final = 3600.0
STATES: Final[tuple[State, ...]] = ("online", "degraded", "offline", "unknown")
VIDEO_POOL: Final = "video"


@dataclass(slots=True)
class _Camera:
    cfg: Camera
    last_probe: CameraProbe | None = None
    last_video: VideoOutcome | None = None
    video_stale: bool = True
    full_probe_at: float | None = None
    """Monotonic time of the last full probe that succeeded (the liveness probe in between
    carries its profiles and URIs over)."""


class HealthService:
    """``async with HealthService(...):`` probes until the context exits.

    Reads devices through the running ``drivers`` (or its own camera drivers), the police
    link through ``link``; writes probes and states through ``writer``, device events through
    ``ingest``; publishes ``device_state`` on ``bus``; answers the ``probe`` command. Every
    function given to :meth:`add_change_listener` is called when a device's state or reason
    changes (the compliance service re-evaluates then).
    """

    def __init__(
        self,
        config: SiteConfig,
        *,
        engine: AsyncEngine,
        writer: StoreWriter,
        ingest: IngestFn,
        index: SiteIndex,
        bus: EventBus,
        link: LinkStatus,
        commands: CommandRegistry,
        drivers: Drivers,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.health = config.health
        self.engine = engine
        self.writer = writer
        self.ingest = ingest
        self.index = index
        self.bus = bus
        self.link = link
        self.commands = commands
        self.drivers = drivers
        self.metrics = metrics
        self._change_listeners: list[Callable[[], None]] = []
        self.machines: dict[str, DeviceHealth] = {}
        self.device_types: dict[str, str] = {}
        self.details: dict[str, dict[str, Any]] = {}
        self.police: dict[str, Any] = {}
        """The police link's latest health facts (connected, outbox, last receipt)."""
        self._cameras: dict[str, _Camera] = {}
        self._panels: dict[str, AlarmPanel] = {}
        self._broadcast: dict[str, tuple[BroadcastController, BroadcastDriver]] = {}
        self._stack = AsyncExitStack()
        self.scheduler = Scheduler(
            concurrency=self.health.concurrency,
            jitter=self.health.jitter,
            pools={VIDEO_POOL: self.health.video_concurrency},
        )
        self._work: CameraWork
        self._maintenance_mark: datetime | None = None
        self.state_changed = asyncio.Condition()
        self._police_fails = 0
        self._police_down_since: datetime | None = None
        """Set while a ``fault.communication`` for the police link is open."""

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            await self._load()
            for c in self.config.devices.cameras:
                self._cameras[c.id] = _Camera(c)
                self._machine(c.id, "camera")
            await self._start_camera_work(stack)
            for p in self.config.devices.alarm_panels:
                self._panels[p.id] = p
                self._machine(p.id, "alarm_panel")
            for b in self.config.devices.broadcast:
                try:
                    bdriver = broadcast_driver(b)
                except ValueError as exc:
                    log.error("%s: cannot build broadcast driver: %s", b.id, exc)
                    continue
                await stack.enter_async_context(bdriver)
                self._broadcast[b.id] = (b, bdriver)
                self._machine(b.id, "broadcast")
            if self.metrics is not None:
                self.metrics.set_state_source(self.states)
            sched = await stack.enter_async_context(self.scheduler)
            self._add_jobs(sched)
            self.commands.register("probe", self._cmd_probe)
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

    async def _start_camera_work(self, stack: AsyncExitStack) -> None:
        h, cameras = self.health, self.config.devices.cameras
        if h.camera_worker == "process" and cameras:
            self._work = await stack.enter_async_context(
                CameraWorker(
                    list(cameras),
                    probe_timeout_s=h.probe_timeout_s,
                    video_concurrency=h.video_concurrency,
                    baselines=self._baseline_bytes,
                )
            )
            return
        self._work = InlineCameraWork.build(
            list(cameras), self.drivers.cameras, self._baselines, h, stack
        )

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever a device's state or its reason changes."""
        self._change_listeners.append(listener)

    async def _load(self) -> None:
        self._baselines: dict[str, Baseline] = {}
        self._baseline_bytes: dict[str, bytes] = {}
        for cid, data in (await load_baselines(self.engine)).items():
            try:
                self._baselines[cid] = Baseline.from_bytes(data)
            except ValueError as exc:
                log.warning("%s: stored video baseline unreadable (%s); learning again", cid, exc)
                continue
            self._baseline_bytes[cid] = data
        self._stored = await load_states(self.engine)

    def _machine(self, device_id: str, device_type: str) -> None:
        h = self.health
        m = DeviceHealth(device_id, h.fail_threshold, h.recover_threshold)
        row = self._stored.get(device_id)
        if row is not None and row.state in STATES:
            m.state = row.state
            m.since = row.since
            m.reason = row.reason
            m.last_seen = row.last_seen
            self.details[device_id] = dict(row.detail or {})
        self.machines[device_id] = m
        self.device_types[device_id] = device_type

    def _add_jobs(self, sched: Scheduler) -> None:
        h = self.health
        budget = h.probe_timeout_s + 5.0
        video_budget = 3 * h.probe_timeout_s
        # Each camera's video check keeps a slot of its own in the video interval, the slots
        # evenly spaced: a site's checks stay spread (a few at a time, not a burst every five
        # minutes) even after they all ran at once when the hub started. The first check
        # runs as soon as the camera answers, the next ones in its slot.
        phases = spread(len(self._cameras), h.video_interval_s)
        for cid, phase in zip(self._cameras, phases, strict=True):
            sched.add(Job(f"camera:{cid}", h.camera_interval_s, self._job_camera(cid), budget))
            sched.add(
                Job(
                    f"video:{cid}",
                    h.video_interval_s,
                    self._job_video(cid),
                    video_budget + 5,
                    pool=VIDEO_POOL,
                    phase=phase,
                ),
                first_in=h.video_interval_s,  # unless the camera answers first (it will)
            )
        for pid in self._panels:
            sched.add(Job(f"panel:{pid}", h.camera_interval_s, self._job_panel(pid), budget))
        for bid in self._broadcast:
            sched.add(
                Job(f"broadcast:{bid}", h.broadcast_interval_s, self._job_broadcast(bid), budget)
            )
        sched.add(Job("police", h.camera_interval_s, self._police, budget))
        sched.add(
            Job("maintenance", MAINTENANCE_EVERY_S, self.maintenance, 600.0),
            first_in=min(60.0, h.camera_interval_s),
        )

    # --- queries -------------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        """Device id → current state."""
        return {d: m.state for d, m in self.machines.items()}

    def device(self, device_id: str) -> dict[str, Any]:
        """State, since, reason, last_seen and the latest details of one device."""
        m = self.machines[device_id]
        return {
            "device_id": device_id,
            "device_type": self.device_types[device_id],
            "state": m.state,
            "since": iso(m.since) if m.since else None,
            "reason": m.reason,
            "last_seen": iso(m.last_seen) if m.last_seen else None,
            "detail": self.details.get(device_id, {}),
        }

    async def wait_for(self, predicate: Any) -> None:
        """Wait until ``predicate()`` holds; re-checked after every stored probe (callers
        bound the wait with a timeout)."""
        async with self.state_changed:
            await self.state_changed.wait_for(predicate)

    async def probe_now(self, device_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Probe now (all devices, or the ones named) and return their states afterwards."""
        ids = device_ids if device_ids is not None else list(self.machines)
        keys = []
        for d in ids:
            kind = {"camera": "camera", "alarm_panel": "panel", "broadcast": "broadcast"}.get(
                self.device_types.get(d, "")
            )
            if kind is None:
                raise KeyError(d)
            keys.append(f"{kind}:{d}")
        await asyncio.gather(*(self.scheduler.run_now(k) for k in keys))
        return [self.device(d) for d in ids]

    async def _cmd_probe(self, body: dict[str, Any]) -> dict[str, Any]:
        target = body.get("device_id", "all")
        if target in (None, "all"):
            ids = None
        elif isinstance(target, str) and target in self.machines:
            ids = [target]
        else:
            raise CommandError("not_found", f"no probed device {target!r}")
        return {"devices": await self.probe_now(ids)}

    # --- jobs ----------------------------------------------------------------------------

    def _job_camera(self, cid: str) -> Any:
        async def run() -> None:
            await self._probe_camera(cid)

        return run

    def _job_video(self, cid: str) -> Any:
        async def run() -> None:
            await self._video_camera(cid)

        return run

    def _job_panel(self, pid: str) -> Any:
        async def run() -> None:
            sia = self.drivers.sia
            await self.apply(panel_result(sia, self._panels[pid], now_utc()))

        return run

    def _job_broadcast(self, bid: str) -> Any:
        async def run() -> None:
            cfg, driver = self._broadcast[bid]
            result = await probe_broadcast(
                driver, cfg, now_utc(), within=self.health.probe_timeout_s
            )
            await self.apply(result)

        return run

    async def _probe_camera(self, cid: str) -> None:
        cam = self._cameras[cid]
        at = now_utc()
        # The full probe (device information, profiles, stream and snapshot URIs: four
        # authenticated SOAP calls) once per video interval and after any failure; in
        # between the liveness probe (the clock and a DESCRIBE of the stream), which finds a
        # camera that stopped answering as surely at a fraction of the cost.
        started, last = time.monotonic(), cam.last_probe
        fresh = cam.full_probe_at is not None and (
            started - cam.full_probe_at < self.health.video_interval_s
        )
        previous = last if fresh and last is not None and last.error is None else None
        try:
            probe = await self._work.probe(cid, previous)
        except WorkerLost as exc:
            # Our own worker died with the probe in it: no answer from the camera either
            # way. The next probe in its slot asks again.
            log.info("%s: probe not judged: %s", cid, exc)
            return
        if previous is None and probe.error is None:
            cam.full_probe_at = started
        if probe.stream_uri:
            self.index.set_stream_uri(cid, probe.stream_uri)
        cam.last_probe = probe
        if probe.error is not None:
            cam.video_stale = True  # the picture must be looked at again once it is back
        result = camera_result(
            probe,
            cam.cfg,
            self.config.compliance,
            at,
            None if cam.video_stale else cam.last_video,
        )
        self._subscription_finding(cid, result)
        await self.apply(result)
        if probe.error is None and cam.video_stale and f"video:{cid}" in self.scheduler.jobs:
            self.scheduler.run_soon(f"video:{cid}")

    async def _video_camera(self, cid: str) -> None:
        cam = self._cameras[cid]
        probe = cam.last_probe
        if probe is None or probe.error is not None:
            return  # the camera probe reports it; nothing to look at
        try:
            outcome, learned = await self._work.video(cid, probe)
        except WorkerLost as exc:
            log.info("%s: video check not judged: %s", cid, exc)
            return  # looked at again in its next slot (the picture stays stale)
        if learned is not None:
            await self.writer.submit(SaveBaseline(cid, learned))
            log.info("%s: learned the video baseline from %d frames", cid, outcome.frames)
        latest = cam.last_probe
        if latest is None or latest.error is not None:
            # The camera failed a probe while its picture was being looked at. That failure
            # is the news: a result built from the earlier, good probe would count as an
            # answer and reset the failure debounce. The picture is looked at again later.
            return
        cam.last_video = outcome
        cam.video_stale = False
        if self.metrics is not None:
            self.metrics.set_video_findings(cid, outcome.findings)
        result = camera_result(latest, cam.cfg, self.config.compliance, now_utc(), outcome)
        result.latency_s = None  # a video check's duration is not the camera's latency
        self._subscription_finding(cid, result)
        await self.apply(result, device_type_label="camera_video")

    def _subscription_finding(self, cid: str, result: ProbeResult) -> None:
        sub = self.drivers.camera_events.get(cid)
        subscription_findings(result, getattr(sub, "status", None))

    async def _police(self) -> None:
        at = now_utc()
        link = self.link
        detail = await police_detail(
            link.state.connected,
            link.state.last_receipt_at,
            link.outbox_stats,
            at,
            within=self.health.probe_timeout_s,
        )
        self.police = detail
        if self.metrics is not None:
            self.metrics.set_outbox(detail.get("outbox_depth"), detail.get("outbox_oldest_age_s"))
            await self.metrics.resolve(self.engine)
        if not link.state.connected and link.state.last_error:
            detail["last_error"] = link.state.last_error[:200]
        await self.writer.submit(
            RecordProbe(POLICE_LINK_ID, at, bool(detail["connected"]), None, detail, None)
        )
        await self._police_fault(bool(detail["connected"]), link.state.last_error, at)

    async def _police_fault(self, connected: bool, error: str, at: datetime) -> None:
        """A police link that stays down (broker unreachable, credentials refused) becomes one
        ``fault.communication`` event per outage, after ``fail_threshold`` probes in a row, and
        its ``.restore`` when the link is back. While the link is down the police cannot get
        it, so it is stored and shown on the console first, and forwarded once the link is up.
        Without it, a wrong MQTT password was only a log line repeated on every retry.
        """
        source: dict[str, str | int | float | bool | None] = {
            "protocol": "mqtt",
            "component": "police_link",
        }
        if connected:
            self._police_fails = 0
            since = self._police_down_since
            if since is not None:
                await self.ingest(
                    DeviceEvent(
                        "hub",
                        "fault.communication.restore",
                        at,
                        source=source,
                        dedupe_key=f"health:{POLICE_LINK_ID}:restore:{iso(since)}",
                        detail={"since": iso(since)},
                    )
                )
                self._police_down_since = None
            return
        self._police_fails += 1
        if self._police_down_since is not None or self._police_fails < self.health.fail_threshold:
            return
        reason = (error or "not connected")[:200]
        await self.ingest(
            DeviceEvent(
                "hub",
                "fault.communication",
                at,
                source=source,
                dedupe_key=f"health:{POLICE_LINK_ID}:down:{iso(at)}",
                detail={"reason": f"police link down: {reason}", "error": reason},
            )
        )
        # Only once it is stored: a failed store is retried on the next probe.
        self._police_down_since = at
        log.warning("%s: police link down, fault stored: %s", POLICE_LINK_ID, reason)

    async def maintenance(self) -> None:
        """Drop probes past retention; thin probes older than a day to one per hour."""
        now = now_utc()
        retention = timedelta(days=self.health.probe_retention_days)
        deleted = await self.writer.submit(PruneProbes(retention))
        start = self._maintenance_mark
        if start is None:
            start = await oldest_probe(self.engine)
        end = _floor(now - DOWNSAMPLE_AFTER, DOWNSAMPLE_BUCKET)
        thinned = 0
        if start is not None:
            start = max(_floor(start, DOWNSAMPLE_BUCKET), now - retention - DOWNSAMPLE_BUCKET)
            while start < end:
                # One bucket per operation keeps each write transaction short.
                step = min(end, start + DOWNSAMPLE_BUCKET)
                thinned += await self.writer.submit(DownsampleProbes(start, step))
                start = step
            self._maintenance_mark = end
        if deleted or thinned:
            log.info("probes: %d past retention deleted, %d downsampled", deleted, thinned)

    # --- results → state -----------------------------------------------------------------

    async def apply(self, result: ProbeResult, *, device_type_label: str | None = None) -> None:
        """Feed one probe result to the device's state machine and store the outcome."""
        did = result.device_id
        machine = self.machines[did]
        trial = machine.copy()
        obs = result.observation()
        transition = trial.observe(obs, result.at) if obs is not None else None
        if result.seen_at is not None:
            trial.last_seen = result.seen_at
        elif obs is not None and obs.level != "failed":
            trial.last_seen = result.at
        if machine.since is None and trial.since is None:
            trial.since = result.at  # unknown since the first probe
        detail = result.stored_detail()
        if result.level == "failed" and did in self.details:
            # Keep what was last known about a device that went quiet (its settings,
            # resolution, findings); the error explains why it is not current.
            detail = {**self.details[did], **detail, "stale": True}
        # Still down, but for another reason: the availability message says why.
        changed_reason = trial.reason != machine.reason and trial.state in ("offline", "degraded")
        availability = None
        if transition is not None or changed_reason:
            availability = self._availability(trial, result)
        if transition is not None and self.device_types[did] != "alarm_panel":
            for event in transition_events(transition, machine, result):
                await self.ingest(event)
        await self.writer.submit(
            RecordProbe(
                did,
                result.at,
                result.ok,
                None if result.latency_s is None else round(result.latency_s * 1000.0, 1),
                detail,
                trial,
                transition,
                availability,
                store_probe=result.level is not None,
            )
        )
        self.machines[did] = trial
        self.details[did] = detail
        if self.metrics is not None:
            self.metrics.observe_probe(
                device_type_label or result.device_type,
                result.latency_s,
                result.level or "unknown",
            )
        if transition is not None:
            log.info(
                "%s: %s → %s (%s)", did, transition.old, transition.new, transition.reason or "ok"
            )
            self.bus.publish("device_state", self.device(did) | {"previous": transition.old})
        if transition is not None or changed_reason:
            for listener in self._change_listeners:
                listener()
        async with self.state_changed:
            self.state_changed.notify_all()

    def _availability(self, m: DeviceHealth, result: ProbeResult) -> Availability:
        info = self.index.device(m.device_id)
        loc = info.location
        payload: dict[str, Any] = {
            "schema": "mallhub/availability/1",
            "site_id": self.config.site.id,
            "device_id": m.device_id,
            "device_type": info.type,
            "state": m.state,
            "since": iso(m.since or result.at),
            "reason": m.reason,
            "last_seen": iso(m.last_seen) if m.last_seen else None,
            "ts": iso(now_utc()),
            "location": ({"floor": loc.floor, "zone": loc.zone, "role": loc.role} if loc else None),
            "findings": [p.check for p in result.problems if not p.warning],
        }
        topic = f"{self.config.topic_prefix}/devices/{m.device_id}/availability"
        return Availability(topic, payload)


def _floor(t: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    return datetime.fromtimestamp((t.timestamp() // seconds) * seconds, t.tzinfo)
