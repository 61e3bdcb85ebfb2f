"""The GB/T 28181 uplink inside the hub: config and stored events in, the adapter's callbacks out.

The adapter (``adapters.gb28181``) knows nothing of the hub. This service hands it:
- the channels as they are now — every camera and alarm input with its channel ID (the rule
  of docs/gb28181.md, or the ID pinned in ``police.gb28181.channel_ids``), its name and place,
  and ON/OFF from the health system (a button follows its panel);
- each alarm the hub forwards to the police over MQTT, as ``Notify/Alarm``, the moment it is
  stored (the bus carries committed events);
- the camera's RTSP stream (the URI the hub learnt over ONVIF, with the camera's credentials);
- ``ResetAlarm`` → acknowledging the alarms sent for that button, ``PTZCmd`` → ONVIF PTZ.

The link's state is a device state (``police-gb28181``): stored like a probe, and a change to
offline is a ``fault.communication`` event (with the reason — for a refused registration, the
IDs used), its return a ``.restore``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote, urlsplit, urlunsplit

from adapters.device_event import DeviceEvent
from adapters.gb28181.manscdp import AlarmNotice, PtzCommand
from adapters.gb28181.model import (
    Channel,
    LinkState,
    PlatformConfig,
    PlatformHooks,
    StreamSource,
)
from adapters.gb28181.platform import LowerPlatform
from hub.bus import EventBus, Subscription
from hub.config import SiteConfig
from hub.police.gb28181_config import Gb28181Uplink
from hub.store.writer import StoredEvent

log = logging.getLogger(__name__)

GB_LINK_ID: Final = "police-gb28181"
"""The device id under which the link's state is stored and shown."""
ACK_BY: Final = "police (GB/T 28181)"
ON_STATES: Final = frozenset({"online", "degraded"})

AcknowledgeFn = Callable[[str], Awaitable[Any]]
PtzFn = Callable[[str, PtzCommand], Awaitable[None]]
LinkStateSink = Callable[[LinkState], Awaitable[None]]


def platform_config(site: SiteConfig, gb: Gb28181Uplink) -> PlatformConfig:
    """The adapter's settings from the site's ``police.gb28181``."""
    return PlatformConfig(
        device_id=gb.device_id,
        server_id=gb.server_id,
        server_domain=gb.domain,
        server_host=gb.host,
        server_port=gb.port,
        transport="TCP" if gb.transport == "tcp" else "UDP",
        password=gb.password.get_secret_value() if gb.password is not None else None,
        local_host=gb.local_host,
        local_port=gb.local_port,
        contact_host=gb.contact_host,
        charset=gb.charset,
        register_expires_s=gb.register_expires_s,
        keepalive_interval_s=gb.keepalive_interval_s,
        keepalive_max_missed=gb.keepalive_max_missed,
        max_streams=gb.max_streams,
        catalog_per_message=gb.catalog_per_message,
        t1_s=gb.sip_t1_s,
        retry_min_s=min(2.0, gb.retry_max_s),
        retry_max_s=gb.retry_max_s,
        name=site.site.name,
        civil_code=gb.civil_code,
    )


def with_credentials(uri: str, username: str | None, password: str | None) -> str:
    """``rtsp://host/…`` with the camera's credentials put in (RTSP has no other place)."""
    if not username:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def parse_time(text: object) -> datetime:
    if isinstance(text, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


class GbUplink:
    """Runs the lower-level platform for the hub. An async context manager."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        stream_uris: Mapping[str, str],
        device_states: Callable[[], Mapping[str, str]],
        acknowledge: AcknowledgeFn,
        ptz: PtzFn | None = None,
        on_link_state: LinkStateSink | None = None,
        bus: EventBus | None = None,
    ) -> None:
        gb = config.police.gb28181
        if gb is None:
            raise ValueError("police.gb28181 is not configured")
        self.site = config
        self.gb = gb
        self.channel_ids = config.gb28181_channel_ids()
        self.device_of = {code: device for device, code in self.channel_ids.items()}
        self._stream_uris = stream_uris
        self._device_states = device_states
        self._acknowledge = acknowledge
        self._ptz = ptz
        self._on_link_state = on_link_state
        self._cameras = {c.id: c for c in config.devices.cameras}
        self._panel_of = {b.id: p.id for p in config.devices.alarm_panels for b in p.zones}
        self._buttons = {b.id: b for p in config.devices.alarm_panels for b in p.zones}
        self._sent: dict[str, list[str]] = {}
        """Channel ID → event ids of the alarms sent for it and not yet reset."""
        self._link_tasks: set[asyncio.Task[None]] = set()
        self._bus = bus
        self._stack = AsyncExitStack()
        self._follower: asyncio.Task[None] | None = None
        self.forwarded = 0
        self.handed_at: dict[str, float] = {}
        """Event id → loop time the committed alarm reached the uplink (the latest 1000)."""
        self.platform = LowerPlatform(
            platform_config(config, gb),
            PlatformHooks(
                channels=self.channels,
                stream_source=self._stream_source,
                on_reset_alarm=self._reset_alarm,
                on_ptz=self._on_ptz,
                on_link_state=self._link_state,
            ),
        )

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            await stack.enter_async_context(self.platform)
            if self._bus is not None:
                # Subscribed before anything is stored from now on: no alarm slips between.
                subscription = await stack.enter_async_context(
                    self._bus.subscribe("gb28181", maxsize=10000)
                )
                self._follower = asyncio.get_running_loop().create_task(
                    self._follow(subscription), name="gb28181-follow"
                )
        except BaseException:
            await stack.aclose()
            raise
        return self

    def on_stored(self, event: StoredEvent) -> None:
        """Take a newly committed event (a hook the store calls; it never blocks)."""
        if not event.duplicate and self.forward(event.event_id, event.category, event.message):
            self.forwarded += 1

    async def _follow(self, subscription: Subscription) -> None:
        async for message in subscription:
            if message.topic == "event" and isinstance(message.body, StoredEvent):
                self.on_stored(message.body)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self._stack.aclose()
        for task in list(self._link_tasks):
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(2):
                    await task

    @property
    def state(self) -> LinkState:
        return self.platform.state

    # --- what the platform asks -----------------------------------------------------------

    def channels(self) -> list[Channel]:
        states = self._device_states()
        out: list[Channel] = []
        for cam in self.site.devices.cameras:
            loc = cam.location
            out.append(
                Channel(
                    self.channel_ids[cam.id],
                    cam.id,
                    "camera",
                    cam.name,
                    f"{loc.floor} {loc.description or loc.zone}",
                    online=states.get(cam.id) in ON_STATES,
                )
            )
        for button_id, button in self._buttons.items():
            loc = button.location
            code = self.channel_ids[button_id]
            out.append(
                Channel(
                    code,
                    button_id,
                    "alarm_input",
                    button.name,
                    f"{loc.floor} {loc.description or loc.zone}",
                    online=states.get(self._panel_of[button_id]) in ON_STATES,
                    alarming=bool(self._sent.get(code)),
                )
            )
        return out

    async def _stream_source(self, channel: Channel) -> StreamSource | None:
        camera = self._cameras.get(channel.device_ref)
        uri = self._stream_uris.get(channel.device_ref)
        if camera is None or not uri or not uri.lower().startswith(("rtsp://", "rtsps://")):
            return None
        password = camera.password.get_secret_value() if camera.password else None
        return StreamSource(with_credentials(uri, camera.username, password))

    async def _reset_alarm(self, channel: Channel | None) -> None:
        if channel is None:
            events = [e for ids in self._sent.values() for e in ids]
            self._sent.clear()
        else:
            events = self._sent.pop(channel.channel_id, [])
        for event_id in events:
            await self._acknowledge(event_id)

    async def _on_ptz(self, channel: Channel, command: PtzCommand) -> None:
        if self._ptz is None:
            raise RuntimeError("PTZ is not available")
        await self._ptz(channel.device_ref, command)

    def _link_state(self, state: LinkState) -> None:
        if self._on_link_state is None:
            return
        task = asyncio.get_running_loop().create_task(self._record_link(state))
        self._link_tasks.add(task)
        task.add_done_callback(self._link_tasks.discard)

    async def _record_link(self, state: LinkState) -> None:
        assert self._on_link_state is not None
        try:
            await self._on_link_state(state)
        except Exception:  # the store failing must not end the uplink; the next change retries
            log.exception("%s: could not record the link state", GB_LINK_ID)

    # --- alarms ---------------------------------------------------------------------------

    def notice_for(self, event_id: str, message: Mapping[str, Any]) -> AlarmNotice:
        """The ``Notify/Alarm`` for a stored alarm (its MQTT message carries the GB fields)."""
        device = message.get("device") or {}
        device_id = str(device.get("id") or "")
        gb = message.get("gb28181") or {}
        priority = gb.get("alarm_priority")
        method = gb.get("alarm_method")
        alarm_type = gb.get("alarm_type")
        cameras = [c.get("id") for c in message.get("cameras") or [] if isinstance(c, dict)]
        text = message.get("text") or {}
        return AlarmNotice(
            key=event_id,
            channel_id=self.channel_ids.get(device_id, self.gb.device_id),
            priority=min(4, max(1, int(priority))) if isinstance(priority, int) else 1,
            method=int(method) if isinstance(method, int) and 1 <= method <= 7 else 2,
            alarm_type=int(alarm_type) if isinstance(alarm_type, int) else None,
            occurred_at=parse_time(message.get("occurred_at")),
            description=str(text.get("zh") or message.get("kind") or "alarm"),
            linked_cameras=tuple(self.channel_ids[c] for c in cameras if c in self.channel_ids),
        )

    def forward(self, event_id: str, category: str, message: Mapping[str, Any]) -> bool:
        """Send a stored event upward if it is an alarm the police get over MQTT."""
        if category != "alarm" or message.get("test"):
            return False
        self.handed_at[event_id] = asyncio.get_running_loop().time()
        while len(self.handed_at) > 1000:
            del self.handed_at[next(iter(self.handed_at))]
        notice = self.notice_for(event_id, message)
        sent = self._sent.setdefault(notice.channel_id, [])
        sent.append(event_id)
        del sent[:-100]  # a button nobody resets keeps its latest alarms only
        self.platform.alarms.send(notice)
        return True


class LinkStateRecorder:
    """Stores the link's state as device ``police-gb28181`` and turns outages into events.

    ``record`` stores (as a probe does) the state, its reason and the IDs involved; the first
    change to offline after being online (or at start) is ingested as ``fault.communication``
    with the reason, the return as ``fault.communication.restore``. A clean stop is neither.
    """

    def __init__(
        self,
        submit: Callable[[Any], Awaitable[Any]],
        ingest: Callable[[DeviceEvent], Awaitable[Any]],
        gb: Gb28181Uplink,
    ) -> None:
        self._submit = submit
        self._ingest = ingest
        self.gb = gb
        self._down_since: datetime | None = None
        self._was_online = False

    async def record(self, state: LinkState) -> None:
        from hub.health.state import DeviceHealth, State, Transition
        from hub.health.store import RecordProbe

        at = state.since
        if state.reason == "stopped":
            # A clean stop: the link is down, but that is no fault (no event).
            stopped = DeviceHealth(GB_LINK_ID, state="offline", since=at, reason="hub stopped")
            await self._submit(
                RecordProbe(GB_LINK_ID, at, False, None, {"registered": False}, stopped)
            )
            return
        new: State = "online" if state.online else "offline"
        detail: dict[str, Any] = {
            "registered": state.online,
            "reason": state.reason,
            "server_id": self.gb.server_id,
            "server_id_seen": state.server_id_seen,
            "device_id": self.gb.device_id,
            "server": f"{self.gb.host}:{self.gb.port}/{self.gb.transport}",
        }
        health = DeviceHealth(GB_LINK_ID, state=new, since=at, reason=state.reason)
        if state.online:
            health.last_seen = at
        old: State = "online" if self._was_online else "offline" if self._down_since else "unknown"
        transition = None
        if old != new:
            transition = Transition(GB_LINK_ID, old, new, at, state.reason, "fault.communication")
        await self._submit(
            RecordProbe(GB_LINK_ID, at, state.online, None, detail, health, transition)
        )
        source: dict[str, str | int | float | bool | None] = {
            "protocol": "gb28181",
            "component": "gb28181_uplink",
        }
        if state.online:
            self._was_online = True
            since, self._down_since = self._down_since, None
            if since is not None:
                await self._ingest(
                    DeviceEvent(
                        "hub",
                        "fault.communication.restore",
                        at,
                        source=source,
                        dedupe_key=f"health:{GB_LINK_ID}:restore:{since.isoformat()}",
                        detail={"since": since.isoformat()},
                    )
                )
            return
        if self._down_since is not None:
            return
        self._was_online = False
        self._down_since = at
        await self._ingest(
            DeviceEvent(
                "hub",
                "fault.communication",
                at,
                source=source,
                dedupe_key=f"health:{GB_LINK_ID}:down:{at.isoformat()}",
                detail={"reason": f"GB/T 28181 uplink down: {state.reason}", **detail},
            )
        )


def ptz_through(cameras: Any) -> PtzFn:
    """``PTZCmd`` → ONVIF on the linkage's camera pool: a preset call, a move, or a stop.

    GB/T 28181 speeds are 0–255 per axis; ONVIF velocities -1…1 with tilt up positive, while
    the GB command's tilt +1 means down.
    """

    async def move(camera_id: str, command: PtzCommand) -> None:
        if command.preset is not None:
            await cameras.goto_preset(camera_id, str(command.preset))
            return

        def scale(direction: int, speed: int) -> float:
            return direction * max(0.1, min(1.0, speed / 255))

        await cameras.ptz_move(
            camera_id,
            scale(command.pan, command.pan_speed),
            scale(-command.tilt, command.tilt_speed),
            scale(command.zoom, command.zoom_speed * 17),
        )

    return move
