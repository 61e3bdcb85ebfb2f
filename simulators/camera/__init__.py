"""Simulated ONVIF cameras: one process serves one or many, each on its own ports.

Every camera answers the ONVIF operations the hub uses (Device, Media, Events/PullPoint, PTZ,
DeviceIO) in SOAP 1.2 with WS-UsernameToken digest auth; streams H.264 or H.265 over RTSP
like a real camera (``rtsp://HOST:RTSP_PORT/Profile_1``: main stream, 1920x1080;
``/Profile_2``: sub-stream, 640x360; 25 fps, GOP 2 s; TCP interleaved or UDP; the address
is the one GetStreamUri returns); serves a JPEG snapshot and an MJPEG stream. Snapshot, MJPEG
and RTSP require HTTP Digest with the camera's ONVIF credentials (Basic is refused); RTSP
answers OPTIONS without them. Fault switches (``ALL_FAULTS``: picture faults such as black,
covered, blurred, moved, frozen; stream faults such as low_fps, no_keyframe, stall,
rtsp_unauthorized, rtsp_refused, rtsp_unavailable; device faults; hostile answers) are set
at start, at run time through a small HTTP control API on each camera (``/sim/...``), and
through the Python API used by tests and benchmarks (``CameraFarm``). docs/simulators.md
lists them all with what a client sees.

Control API (no auth; bind the simulator to a trusted interface)::

    GET  /sim/state                        faults, last preset, relay history, subscriptions
    POST /sim/faults  {"set": [...], "clear": [...], "slow_s": 5, "clock_drift_s": 3600}
    POST /sim/events  {"kind": "motion", "active": true, "source": "VideoSource_1", "count": 1}

This package imports neither the hub nor the adapters: it implements the wire protocols on
its own, so a driver bug cannot hide behind the same bug in the fake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import logging
import os
import secrets
import xml.etree.ElementTree as ET
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from aiohttp import web

from simulators.camera import video_loop
from simulators.camera.digest import DigestGuard
from simulators.camera.rtp_session import PlayOptions
from simulators.camera.rtsp_server import RtspServer
from simulators.camera.video_loop import LoopKey
from simulators.onvif_soap import (
    NS,
    SOAP_CONTENT_TYPE,
    TNS1,
    TOPIC_DIALECT,
    SoapRequest,
    SoapRequestError,
    check_username_token,
    child_text,
    fault,
    find_local,
    format_datetime,
    malformed,
    padded,
    parse_duration,
    parse_request,
    parse_termination,
    q,
    response,
    sub,
    unterminated,
    unterminated_size,
    wrong_namespace,
)

log = logging.getLogger(__name__)

VIDEO_FAULTS: tuple[str, ...] = (
    "black",
    "frozen",
    "blurred",
    "covered",
    "dark",
    "bright",
    "colour_cast",
    "noise",
    "moved",
    "signal_loss",
)
"""Picture faults, handed to the scene renderer (same names as ``simulators.scene``)."""

DEVICE_FAULTS: tuple[str, ...] = (
    "offline",  # accept connections on ONVIF/snapshot paths, then drop them unanswered
    "slow",  # delay every ONVIF/snapshot answer by ``slow_s``
    "auth_failure",  # reject every credential (as after a password change on the camera)
    "clock_drift",  # the camera clock is off by ``clock_drift_s``
    "subscription_loss",  # existing subscriptions vanish; new ones are refused while set
)
QUIRKS: tuple[str, ...] = (
    "times_without_z",  # xs:dateTime values without a zone designator
    "no_get_services",  # GetServices answers ActionNotSupported (older firmware)
    "topic_suffix",  # event topics end in "//." as some firmware sends them
    "credentials_in_uri",  # snapshot/stream URIs carry user:password@
    "raw_ampersand",  # an unescaped "&" in GetDeviceInformation: not well-formed, but readable
)
HOSTILE_FAULTS: tuple[str, ...] = (
    "malformed_xml",  # every SOAP answer is cut off half-way: not well-formed XML
    "wrong_namespace",  # SOAP and ONVIF namespaces replaced by a foreign one
    "huge_body",  # every SOAP answer is ``huge_body_bytes`` of unterminated XML
    "huge_answer",  # every SOAP answer is well-formed and valid, padded to ``huge_body_bytes``
)
"""Hostile answers on the ONVIF services (snapshot and MJPEG stay as they are)."""
STREAM_FAULTS: tuple[str, ...] = (
    "low_fps",  # RTSP streams send ``low_fps`` pictures a second while 25 (``fps``) is declared
    "no_keyframe",  # key frames only every ``no_keyframe_s``; a new session starts just after one
    "stall",  # PLAY is answered, then no RTP after ``stall_after_s`` (the session stays up)
    "rtsp_unauthorized",  # RTSP answers 401 to every request (ONVIF still accepts the login)
    "rtsp_refused",  # the RTSP port is closed: connections are refused
    "rtsp_unavailable",  # DESCRIBE, SETUP and PLAY are answered 503 Service Unavailable
)
"""Faults of the RTSP streams only (the picture faults in ``VIDEO_FAULTS`` show on them too)."""
ALL_FAULTS: tuple[str, ...] = DEVICE_FAULTS + QUIRKS + VIDEO_FAULTS + STREAM_FAULTS + HOSTILE_FAULTS

SERVICE_PATHS = {
    "device": ("/onvif/device_service", NS["tds"], (2, 60)),
    "media": ("/onvif/media_service", NS["trt"], (2, 60)),
    "events": ("/onvif/events_service", NS["tev"], (2, 60)),
    "ptz": ("/onvif/ptz_service", "http://www.onvif.org/ver20/ptz/wsdl", (2, 60)),
    "deviceio": ("/onvif/deviceio_service", NS["tmd"], (2, 60)),
}
SUBSCRIPTION_PATH = "/onvif/subscription/"


@dataclass(frozen=True, slots=True)
class EventType:
    """One event the simulated camera can raise: topic, source item names, data item name."""

    topic: str
    source_items: tuple[tuple[str, str], ...]
    data_item: str


EVENT_TYPES: dict[str, EventType] = {
    "motion": EventType(
        "tns1:RuleEngine/CellMotionDetector/Motion",
        (
            ("VideoSourceConfigurationToken", "VideoSourceConfig_1"),
            ("VideoAnalyticsConfigurationToken", "VideoAnalyticsConfig_1"),
            ("Rule", "MotionDetectorRule"),
        ),
        "IsMotion",
    ),
    "motion_alarm": EventType(
        "tns1:VideoSource/MotionAlarm", (("Source", "VideoSource_1"),), "State"
    ),
    "tamper": EventType(
        "tns1:RuleEngine/TamperDetector/Tamper",
        (
            ("VideoSourceConfigurationToken", "VideoSourceConfig_1"),
            ("VideoAnalyticsConfigurationToken", "VideoAnalyticsConfig_1"),
            ("Rule", "TamperDetectorRule"),
        ),
        "IsTamper",
    ),
    "scene_change": EventType(
        "tns1:VideoSource/GlobalSceneChange/ImagingService", (("Source", "VideoSource_1"),), "State"
    ),
    "too_dark": EventType(
        "tns1:VideoSource/ImageTooDark/ImagingService", (("Source", "VideoSource_1"),), "State"
    ),
    "too_bright": EventType(
        "tns1:VideoSource/ImageTooBright/ImagingService", (("Source", "VideoSource_1"),), "State"
    ),
    "too_blurry": EventType(
        "tns1:VideoSource/ImageTooBlurry/ImagingService", (("Source", "VideoSource_1"),), "State"
    ),
    "signal_loss": EventType(
        "tns1:VideoSource/SignalLoss", (("Source", "VideoSource_1"),), "State"
    ),
    "digital_input": EventType(
        "tns1:Device/Trigger/DigitalInput", (("InputToken", "DigitalInput_1"),), "LogicalState"
    ),
    "storage_failure": EventType(
        "tns1:Device/HardwareFailure/StorageFailure", (("Token", "Storage_1"),), "Failed"
    ),
    "vendor_unknown": EventType(
        "tns1:Vendor/Private/HeartBeat", (("Source", "VideoSource_1"),), "State"
    ),
}


@dataclass(slots=True)
class CameraConfig:
    """One simulated camera. There are no default credentials: callers must supply them."""

    name: str
    username: str
    password: str
    host: str = "127.0.0.1"
    port: int = 0
    width: int = 1920
    height: int = 1080
    fps: int = 25
    encoding: str = "H264"
    """Main stream codec: "H264" or "H265"."""
    sub_width: int = 640
    sub_height: int = 360
    sub_encoding: str = "H264"
    gop_s: float = 2.0
    low_fps: int = 10
    """Pictures a second actually sent while the ``low_fps`` fault is set."""
    no_keyframe_s: float = 10.0
    """Distance between key frames while the ``no_keyframe`` fault is set."""
    stall_after_s: float = 0.0
    """Seconds of video a session gets before the ``stall`` fault stops it."""
    rtsp_session_timeout_s: float = 60.0
    presets: dict[str, str] = field(default_factory=lambda: {"1": "Entrance", "2": "Atrium"})
    relays: tuple[str, ...] = ("RelayOutput_1",)
    manufacturer: str = "Mallsim"
    model: str = "SimCam-1000"
    firmware: str = "1.0.0"
    faults: frozenset[str] = frozenset()
    slow_s: float = 5.0
    clock_drift_s: float = 0.0
    auth_window_s: float = 300.0
    """A token whose Created time is further than this from the camera clock is rejected."""
    max_pull_timeout_s: float = 60.0
    rtsp_port: int = 0
    """Port of the RTSP server (0: any free port; GetStreamUri names the one bound)."""
    seed: int = 0
    huge_body_bytes: int = 16 * 1024 * 1024
    """Size of every SOAP answer while the ``huge_body`` or ``huge_answer`` fault is set."""
    jpeg_loop: int = 0
    """0: every frame served is rendered and encoded then. N: the camera serves a loop of N
    frames, each rendered and encoded once (until a video fault changes), as a real camera's
    hardware encoder costs the host nothing; lets hundreds of simulated cameras share a
    machine with the hub being measured."""


@dataclass(frozen=True, slots=True)
class RelayChange:
    at: datetime
    token: str
    state: str


@dataclass(frozen=True, slots=True)
class PresetCall:
    at: datetime
    profile: str
    preset: str


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    source: tuple[tuple[str, str], ...]
    data: tuple[str, str]
    at: datetime
    operation: str


@dataclass(slots=True)
class _Subscription:
    sid: str
    termination: datetime
    queue: deque[_Message] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False
    renewals: int = 0
    pulls: int = 0


class _Fault(Exception):
    def __init__(self, code: str, subcode: str | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason


class _Renderer(Protocol):
    faults: set[str]

    def jpeg(self, t: float, quality: int = 80) -> bytes: ...


class _FallbackScene:
    """Stand-in picture for when ``simulators.scene`` is not available: a plain test card."""

    def __init__(self, name: str, width: int, height: int, seed: int = 0) -> None:
        self.name = name
        self.width = min(width, 320)
        self.height = min(height, 180)
        self.faults: set[str] = set()

    def jpeg(self, t: float, quality: int = 80) -> bytes:
        import cv2
        import numpy as np

        level = 0 if {"black", "signal_loss"} & self.faults else 128
        frame = np.full((self.height, self.width, 3), level, dtype=np.uint8)
        if level:
            cv2.putText(frame, f"{self.name} {t:7.2f}", (8, 24), 0, 0.5, (255, 255, 255), 1)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return bytes(buf)


def _make_scene(config: CameraConfig) -> _Renderer:
    # Imported by name so this module keeps working (with a plain test card) where the
    # scene renderer is absent, and so its optional heavy imports load only on first frame.
    try:
        module = importlib.import_module("simulators.scene")
    except ImportError:
        return _FallbackScene(config.name, config.width, config.height, config.seed)
    scene: _Renderer = module.Scene(
        config.name, width=config.width, height=config.height, seed=config.seed
    )
    return scene


_Handler = Callable[[SoapRequest, web.Request], Awaitable[ET.Element]]


class SimCamera:
    """One simulated camera: an aiohttp server with ONVIF, snapshot, MJPEG and control routes."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self.faults: set[str] = set(config.faults)
        self.slow_s = config.slow_s
        self.clock_drift_s = config.clock_drift_s
        self.last_preset: str | None = None
        self.preset_calls: list[PresetCall] = []
        self.relay_state: dict[str, str] = dict.fromkeys(config.relays, "inactive")
        self.relay_history: list[RelayChange] = []
        self.calls: Counter[str] = Counter()
        self.auth_rejections = 0
        self.subscriptions_created = 0
        self._subs: dict[str, _Subscription] = {}
        self._properties: dict[tuple[str, str], bool] = {}
        self.digest = DigestGuard(config.username, config.password)
        self.rtsp = RtspServer(self, config.host, config.rtsp_port, config.rtsp_session_timeout_s)
        self._running = False
        self._scene: _Renderer | None = None
        self._jpegs: dict[int, bytes] = {}
        """Loop slot → encoded frame, with ``jpeg_loop``."""
        self._closing = False
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._started_at = 0.0
        self._runner: web.AppRunner | None = None
        self.port = config.port
        self._ops: dict[str, _Handler] = {
            "GetSystemDateAndTime": self._get_system_date_and_time,
            "GetServices": self._get_services,
            "GetCapabilities": self._get_capabilities,
            "GetDeviceInformation": self._get_device_information,
            "GetProfiles": self._get_profiles,
            "GetStreamUri": self._get_stream_uri,
            "GetSnapshotUri": self._get_snapshot_uri,
            "GetVideoEncoderConfiguration": self._get_video_encoder_configuration,
            "GetVideoEncoderConfigurations": self._get_video_encoder_configurations,
            "GetEventProperties": self._get_event_properties,
            "CreatePullPointSubscription": self._create_pull_point_subscription,
            "PullMessages": self._pull_messages,
            "Renew": self._renew,
            "Unsubscribe": self._unsubscribe,
            "SetSynchronizationPoint": self._set_synchronization_point,
            "GetPresets": self._get_presets,
            "GotoPreset": self._goto_preset,
            "GetRelayOutputs": self._get_relay_outputs,
            "SetRelayOutputState": self._set_relay_output_state,
        }
        for event_type in EVENT_TYPES.values():
            if event_type is not EVENT_TYPES["vendor_unknown"]:
                self._properties[(event_type.topic, event_type.source_items[0][1])] = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving; afterwards ``port`` is the port actually bound."""
        app = web.Application(middlewares=[self._fault_middleware])
        app.router.add_post("/onvif/{path:.*}", self._soap)
        app.router.add_get("/onvif/snapshot", self._snapshot)
        app.router.add_get("/onvif/mjpeg", self._mjpeg)
        app.router.add_get("/sim/state", self._sim_state)
        app.router.add_post("/sim/faults", self._sim_faults)
        app.router.add_post("/sim/events", self._sim_events)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._started_at = asyncio.get_running_loop().time()
        address = runner.addresses[0]
        self.port = int(address[1])
        try:
            await self.rtsp.start()
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        self._running = True
        self._apply_scene_faults()
        log.debug("%s: listening on %s:%d", self.config.name, self.config.host, self.port)

    async def stop(self) -> None:
        """Stop serving; long polls and MJPEG streams end at once."""
        self._closing = True
        self._stopping.set()
        for subscription in self._subs.values():
            subscription.wakeup.set()
        if self._running:
            self._running = False
            await self.rtsp.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- library API ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def rtsp_port(self) -> int:
        """The port the RTSP server is bound to (kept while ``rtsp_refused`` closes it)."""
        return self.rtsp.port

    def rtsp_url(self, profile: str = "Profile_1", *, credentials: bool = False) -> str:
        """The stream's RTSP URL as GetStreamUri gives it (optionally with user:password@)."""
        creds = f"{self.config.username}:{self.config.password}@" if credentials else ""
        return f"rtsp://{creds}{self.config.host}:{self.rtsp.port}/{profile}"

    async def video_ready(self) -> None:
        """Encode (or load) the loops both streams play now, so a first DESCRIBE is quick."""
        for profile in ("Profile_1", "Profile_2"):
            key = self.stream_key(profile)
            if key is not None:
                await asyncio.to_thread(video_loop.get, key)

    # --- what the RTSP server plays ------------------------------------------------------

    def stream_key(self, profile: str) -> LoopKey | None:
        """The encoded loop ``profile`` plays with the current faults (None: no such stream)."""
        for token, _, width, height, fps, codec in self._encoders():
            if token != profile:
                continue
            sent = max(1, min(self.config.low_fps, fps)) if "low_fps" in self.faults else fps
            picture = frozenset(self.faults & set(VIDEO_FAULTS))
            gop = max(1, round(self.config.gop_s * sent))
            loop_frames = 2 * gop
            if "no_keyframe" in self.faults:
                gop = loop_frames = max(2, round(self.config.no_keyframe_s * sent))
            elif "frozen" in picture or "signal_loss" in picture or "black" in picture:
                # A still picture: one GOP replayed decodes to the very same pictures.
                loop_frames = gop
            return LoopKey(codec, width, height, sent, fps, gop, loop_frames, picture)
        return None

    def declared(self, profile: str) -> tuple[str, int, int, int]:
        for token, _, width, height, fps, codec in self._encoders():
            if token == profile:
                return codec, width, height, fps
        raise KeyError(profile)

    def play_options(self) -> PlayOptions:
        return PlayOptions(
            start_index=1 if "no_keyframe" in self.faults else 0,
            stall_after_s=self.config.stall_after_s,
        )

    def now(self) -> datetime:
        """The camera's own clock (drifted when the ``clock_drift`` fault is set)."""
        drift = self.clock_drift_s if "clock_drift" in self.faults else 0.0
        return datetime.now(UTC) + timedelta(seconds=drift)

    def set_faults(
        self,
        set_: Iterable[str] = (),
        clear: Iterable[str] = (),
        *,
        slow_s: float | None = None,
        clock_drift_s: float | None = None,
    ) -> None:
        """Switch faults on and off; unknown names raise ``ValueError``."""
        to_set, to_clear = set(set_), set(clear)
        unknown = (to_set | to_clear) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        if slow_s is not None:
            self.slow_s = slow_s
        if clock_drift_s is not None:
            self.clock_drift_s = clock_drift_s
        self.faults -= to_clear
        self.faults |= to_set
        if "subscription_loss" in to_set:
            self.drop_subscriptions()
        self._apply_scene_faults()
        if self._running:
            self.rtsp.sync_listener()
            self.rtsp.refresh_pictures()
        self._touch()
        log.info("%s: faults now %s", self.config.name, sorted(self.faults))

    def drop_subscriptions(self) -> None:
        """Forget every subscription, as a camera does on reboot; pending pulls get a fault."""
        for subscription in self._subs.values():
            subscription.dropped = True
            subscription.wakeup.set()
        self._subs.clear()

    def emit(self, kind: str, active: bool, *, source: str | None = None) -> None:
        """Raise one event (a property change) on every live subscription."""
        event_type = EVENT_TYPES[kind]
        source_items = event_type.source_items
        if source is not None:
            source_items = ((source_items[0][0], source), *source_items[1:])
        self._properties[(event_type.topic, source_items[0][1])] = active
        message = _Message(
            event_type.topic,
            source_items,
            (event_type.data_item, "true" if active else "false"),
            self.now(),
            "Changed",
        )
        for subscription in self._subs.values():
            subscription.queue.append(message)
            subscription.wakeup.set()

    def burst(self, kind: str, count: int, *, source: str | None = None) -> None:
        """``count`` on/off pairs of one event in quick succession (ends "off")."""
        for _ in range(count):
            self.emit(kind, True, source=source)
            self.emit(kind, False, source=source)

    def state(self) -> dict[str, Any]:
        """Plain-JSON view of the camera, as served by ``GET /sim/state``."""
        return {
            "name": self.config.name,
            "port": self.port,
            "faults": sorted(self.faults),
            "slow_s": self.slow_s,
            "clock_drift_s": self.clock_drift_s,
            "last_preset": self.last_preset,
            "preset_calls": [
                {"at": c.at.isoformat(), "profile": c.profile, "preset": c.preset}
                for c in self.preset_calls
            ],
            "relay_state": dict(self.relay_state),
            "relay_history": [
                {"at": c.at.isoformat(), "token": c.token, "state": c.state}
                for c in self.relay_history
            ],
            "subscriptions": [
                {
                    "id": s.sid,
                    "termination": s.termination.isoformat(),
                    "queued": len(s.queue),
                    "renewals": s.renewals,
                    "pulls": s.pulls,
                }
                for s in self._subs.values()
            ],
            "subscriptions_created": self.subscriptions_created,
            "auth_rejections": self.auth_rejections,
            "calls": dict(self.calls),
        }

    async def wait_for(self, predicate: Callable[[SimCamera], bool]) -> None:
        """Wait until ``predicate(camera)`` holds; it is re-checked after every request.

        Callers bound the wait with ``asyncio.timeout``.
        """
        while True:
            changed = self._changed
            if predicate(self):
                return
            await changed.wait()

    def _touch(self) -> None:
        # Wake this generation's waiters; later waiters wait on a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def subscriptions(self) -> list[_Subscription]:
        return list(self._subs.values())

    # --- HTTP plumbing -------------------------------------------------------------------

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/sim/"):
            if "offline" in self.faults:
                # Answer nothing and drop the connection, as an unplugged camera behind a
                # switch that still completes the TCP handshake would look to the client.
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable()
            if "slow" in self.faults:
                # Sleep, but end at once when the simulator stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.slow_s):
                        await self._stopping.wait()
        return await handler(request)

    async def _soap(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except ConnectionResetError:
            # The client gave up (a "slow" fault outlasting its timeout); nobody to answer.
            return web.Response(status=400)
        try:
            soap = parse_request(body)
        except SoapRequestError as exc:
            return self._fault_response(_Fault("Sender", "ter:WellFormed", str(exc)))
        self.calls[soap.name] += 1
        handler = self._ops.get(soap.name)
        try:
            return self._hostile(await self._dispatch(soap, handler, request))
        finally:
            self._touch()

    def _hostile(self, answer: web.Response) -> web.Response:
        """Apply the hostile-answer faults to a SOAP response (see ``HOSTILE_FAULTS``)."""
        hostile = self.faults & set(HOSTILE_FAULTS)
        if not hostile or not isinstance(answer.body, bytes):
            return answer
        body = answer.body
        if "wrong_namespace" in hostile:
            body = wrong_namespace(body)
        if "malformed_xml" in hostile:
            body = malformed(body)
        if "huge_body" in hostile:
            # The opening of a real answer, then one element whose text never ends: a camera
            # (or whatever else answers on its port) streaming garbage until the limit. Sent
            # in chunks with its length announced, so the simulator never holds it whole.
            size = self.config.huge_body_bytes
            headers = {**_SOAP_HEADERS, "Content-Length": str(unterminated_size(body, size))}
            chunks = unterminated(body, size)
            return web.Response(status=200, body=_stream(chunks), headers=headers)
        if "huge_answer" in hostile:
            # A correct answer that is simply enormous: only a size limit can refuse it. It is
            # streamed without a length, so the client cannot tell its size in advance.
            chunks = padded(body, self.config.huge_body_bytes)
            return web.Response(status=200, body=_stream(chunks), headers=_SOAP_HEADERS)
        return web.Response(status=200, body=body, headers=_SOAP_HEADERS)

    async def _dispatch(
        self, soap: SoapRequest, handler: _Handler | None, request: web.Request
    ) -> web.Response:
        try:
            if handler is None:
                raise _Fault("Receiver", "ter:ActionNotSupported", f"{soap.name} not supported")
            if soap.name != "GetSystemDateAndTime":
                self._authenticate(soap)
            result = await handler(soap, request)
        except _Fault as exc:
            return self._fault_response(exc)
        body = response(result)
        if "raw_ampersand" in self.faults:
            # Firmware that writes names without escaping them; lxml's recovery reads past it.
            body = body.replace(b"<tds:Manufacturer>", b"<tds:Manufacturer>R&D ")
        return web.Response(body=body, content_type=None, headers=_SOAP_HEADERS)

    def _authenticate(self, soap: SoapRequest) -> None:
        if "auth_failure" in self.faults:
            reason: str | None = "credentials rejected"
        else:
            reason = check_username_token(
                soap.header,
                self.config.username,
                self.config.password,
                self.now(),
                timedelta(seconds=self.config.auth_window_s),
            )
        if reason is not None:
            self.auth_rejections += 1
            log.debug("%s: %s rejected: %s", self.config.name, soap.name, reason)
            raise _Fault("Sender", "ter:NotAuthorized", "Sender not Authorized")

    @staticmethod
    def _fault_response(exc: _Fault) -> web.Response:
        status = 400 if exc.code == "Sender" else 500
        return web.Response(
            status=status,
            body=fault(exc.code, exc.subcode, exc.reason),
            headers=_SOAP_HEADERS,
        )

    def _zulu(self) -> bool:
        return "times_without_z" not in self.faults

    def _time(self, value: datetime) -> str:
        return format_datetime(value, zulu=self._zulu())

    def _host(self, request: web.Request) -> str:
        # Addresses are built from the Host the client used, so they are reachable from it.
        return request.host or f"{self.config.host}:{self.port}"

    def _creds_prefix(self) -> str:
        if "credentials_in_uri" in self.faults:
            return f"{self.config.username}:{self.config.password}@"
        return ""

    # --- Device service ------------------------------------------------------------------

    async def _get_system_date_and_time(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        now = self.now()
        out = ET.Element(q("tds", "GetSystemDateAndTimeResponse"))
        sdt = sub(out, "tds:SystemDateAndTime")
        sub(sdt, "tt:DateTimeType", "NTP")
        sub(sdt, "tt:DaylightSavings", "false")
        sub(sub(sdt, "tt:TimeZone"), "tt:TZ", "UTC0")
        for tag in ("tt:UTCDateTime", "tt:LocalDateTime"):
            dt_el = sub(sdt, tag)
            time_el = sub(dt_el, "tt:Time")
            sub(time_el, "tt:Hour", str(now.hour))
            sub(time_el, "tt:Minute", str(now.minute))
            sub(time_el, "tt:Second", str(now.second))
            date_el = sub(dt_el, "tt:Date")
            sub(date_el, "tt:Year", str(now.year))
            sub(date_el, "tt:Month", str(now.month))
            sub(date_el, "tt:Day", str(now.day))
        return out

    async def _get_services(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        if "no_get_services" in self.faults:
            raise _Fault("Receiver", "ter:ActionNotSupported", "GetServices not implemented")
        out = ET.Element(q("tds", "GetServicesResponse"))
        host = self._host(request)
        for path, namespace, (major, minor) in SERVICE_PATHS.values():
            service = sub(out, "tds:Service")
            sub(service, "tds:Namespace", namespace)
            sub(service, "tds:XAddr", f"http://{host}{path}")
            version = sub(service, "tds:Version")
            sub(version, "tt:Major", str(major))
            sub(version, "tt:Minor", str(minor))
        return out

    async def _get_capabilities(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        host = self._host(request)
        out = ET.Element(q("tds", "GetCapabilitiesResponse"))
        caps = sub(out, "tds:Capabilities")
        sub(sub(caps, "tt:Device"), "tt:XAddr", f"http://{host}{SERVICE_PATHS['device'][0]}")
        events = sub(caps, "tt:Events")
        sub(events, "tt:XAddr", f"http://{host}{SERVICE_PATHS['events'][0]}")
        sub(events, "tt:WSSubscriptionPolicySupport", "false")
        sub(events, "tt:WSPullPointSupport", "true")
        sub(events, "tt:WSPausableSubscriptionManagerInterfaceSupport", "false")
        media = sub(caps, "tt:Media")
        sub(media, "tt:XAddr", f"http://{host}{SERVICE_PATHS['media'][0]}")
        streaming = sub(media, "tt:StreamingCapabilities")
        sub(streaming, "tt:RTPMulticast", "false")
        sub(streaming, "tt:RTP_TCP", "true")
        sub(streaming, "tt:RTP_RTSP_TCP", "true")
        sub(sub(caps, "tt:PTZ"), "tt:XAddr", f"http://{host}{SERVICE_PATHS['ptz'][0]}")
        extension = sub(caps, "tt:Extension")
        deviceio = sub(extension, "tt:DeviceIO")
        sub(deviceio, "tt:XAddr", f"http://{host}{SERVICE_PATHS['deviceio'][0]}")
        sub(deviceio, "tt:VideoSources", "1")
        sub(deviceio, "tt:VideoOutputs", "0")
        sub(deviceio, "tt:AudioSources", "0")
        sub(deviceio, "tt:AudioOutputs", "0")
        sub(deviceio, "tt:RelayOutputs", str(len(self.config.relays)))
        return out

    async def _get_device_information(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        out = ET.Element(q("tds", "GetDeviceInformationResponse"))
        sub(out, "tds:Manufacturer", self.config.manufacturer)
        sub(out, "tds:Model", self.config.model)
        sub(out, "tds:FirmwareVersion", self.config.firmware)
        sub(out, "tds:SerialNumber", hashlib.sha1(self.config.name.encode()).hexdigest()[:12])
        sub(out, "tds:HardwareId", "sim-1")
        return out

    # --- Media service -------------------------------------------------------------------

    def _encoders(self) -> list[tuple[str, str, int, int, int, str]]:
        """(profile, encoder token, width, height, fps, codec): main stream and sub-stream."""
        cfg = self.config
        return [
            ("Profile_1", "VideoEncoder_1", cfg.width, cfg.height, cfg.fps, cfg.encoding),
            (
                "Profile_2",
                "VideoEncoder_2",
                cfg.sub_width,
                cfg.sub_height,
                cfg.fps,
                cfg.sub_encoding,
            ),
        ]

    def _encoder_element(
        self, parent: ET.Element, tag: str, encoder: tuple[str, str, int, int, int, str]
    ) -> None:
        _, token, width, height, fps, codec = encoder
        conf = sub(parent, tag, token=token)
        sub(conf, "tt:Name", token)
        sub(conf, "tt:UseCount", "1")
        sub(conf, "tt:Encoding", codec)
        resolution = sub(conf, "tt:Resolution")
        sub(resolution, "tt:Width", str(width))
        sub(resolution, "tt:Height", str(height))
        sub(conf, "tt:Quality", "5")
        rate = sub(conf, "tt:RateControl")
        sub(rate, "tt:FrameRateLimit", str(fps))
        sub(rate, "tt:EncodingInterval", "1")
        sub(rate, "tt:BitrateLimit", "4096")
        if codec == "H264":
            h264 = sub(conf, "tt:H264")
            sub(h264, "tt:GovLength", str(round(fps * self.config.gop_s)))
            sub(h264, "tt:H264Profile", "Main")
        multicast = sub(conf, "tt:Multicast")
        address = sub(multicast, "tt:Address")
        sub(address, "tt:Type", "IPv4")
        sub(address, "tt:IPv4Address", "0.0.0.0")
        sub(multicast, "tt:Port", "0")
        sub(multicast, "tt:TTL", "0")
        sub(multicast, "tt:AutoStart", "false")
        sub(conf, "tt:SessionTimeout", "PT60S")

    def _profile_token(self, soap: SoapRequest) -> str:
        token = child_text(soap.operation, "ProfileToken")
        if token not in {e[0] for e in self._encoders()}:
            raise _Fault("Sender", "ter:InvalidArgVal", f"no profile {token!r}")
        return token

    async def _get_profiles(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        out = ET.Element(q("trt", "GetProfilesResponse"))
        for encoder in self._encoders():
            profile = sub(out, "trt:Profiles", token=encoder[0], fixed="true")
            sub(profile, "tt:Name", "mainStream" if encoder[0] == "Profile_1" else "subStream")
            source = sub(profile, "tt:VideoSourceConfiguration", token="VideoSourceConfig_1")
            sub(source, "tt:Name", "VideoSourceConfig_1")
            sub(source, "tt:UseCount", "2")
            sub(source, "tt:SourceToken", "VideoSource_1")
            sub(
                source,
                "tt:Bounds",
                x="0",
                y="0",
                width=str(self.config.width),
                height=str(self.config.height),
            )
            self._encoder_element(profile, "tt:VideoEncoderConfiguration", encoder)
            if self.config.presets:
                ptz = sub(profile, "tt:PTZConfiguration", token="PTZConfig_1")
                sub(ptz, "tt:Name", "PTZConfig_1")
                sub(ptz, "tt:UseCount", "2")
                sub(ptz, "tt:NodeToken", "PTZNode_1")
        return out

    async def _get_stream_uri(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        token = self._profile_token(soap)
        protocol = (
            child_text(find_local(soap.operation, "Transport"), "Protocol") or "RTSP"
        ).upper()
        hostname = self._host(request).rsplit(":", 1)[0]
        if protocol == "HTTP":
            uri = f"http://{self._creds_prefix()}{self._host(request)}/onvif/mjpeg?profile={token}"
        else:
            uri = f"rtsp://{self._creds_prefix()}{hostname}:{self.rtsp.port}/{token}"
        return self._media_uri("trt:GetStreamUriResponse", uri)

    async def _get_snapshot_uri(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        token = self._profile_token(soap)
        uri = f"http://{self._creds_prefix()}{self._host(request)}/onvif/snapshot?profile={token}"
        return self._media_uri("trt:GetSnapshotUriResponse", uri)

    @staticmethod
    def _media_uri(tag: str, uri: str) -> ET.Element:
        prefix, local = tag.split(":")
        out = ET.Element(q(prefix, local))
        media_uri = sub(out, "trt:MediaUri")
        sub(media_uri, "tt:Uri", uri)
        sub(media_uri, "tt:InvalidAfterConnect", "false")
        sub(media_uri, "tt:InvalidAfterReboot", "false")
        sub(media_uri, "tt:Timeout", "PT0S")
        return out

    async def _get_video_encoder_configuration(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        token = child_text(soap.operation, "ConfigurationToken")
        for encoder in self._encoders():
            if encoder[1] == token:
                out = ET.Element(q("trt", "GetVideoEncoderConfigurationResponse"))
                self._encoder_element(out, "trt:Configuration", encoder)
                return out
        raise _Fault("Sender", "ter:InvalidArgVal", f"no encoder configuration {token!r}")

    async def _get_video_encoder_configurations(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        out = ET.Element(q("trt", "GetVideoEncoderConfigurationsResponse"))
        for encoder in self._encoders():
            self._encoder_element(out, "trt:Configurations", encoder)
        return out

    # --- PTZ and DeviceIO ----------------------------------------------------------------

    async def _get_presets(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        self._profile_token(soap)
        out = ET.Element(f"{{{SERVICE_PATHS['ptz'][1]}}}GetPresetsResponse")
        for token, name in self.config.presets.items():
            preset = ET.SubElement(out, f"{{{SERVICE_PATHS['ptz'][1]}}}Preset", {"token": token})
            sub(preset, "tt:Name", name)
        return out

    async def _goto_preset(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        profile = self._profile_token(soap)
        preset = child_text(soap.operation, "PresetToken") or ""
        if preset not in self.config.presets:
            raise _Fault("Sender", "ter:InvalidArgVal", f"no preset {preset!r}")
        self.last_preset = preset
        self.preset_calls.append(PresetCall(datetime.now(UTC), profile, preset))
        return ET.Element(f"{{{SERVICE_PATHS['ptz'][1]}}}GotoPresetResponse")

    async def _get_relay_outputs(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        # DeviceIO reuses the device service's message elements, so answer in the request's
        # own namespace whichever service it arrived on.
        ns = soap.namespace
        out = ET.Element(f"{{{ns}}}GetRelayOutputsResponse")
        for token in self.config.relays:
            relay = ET.SubElement(out, f"{{{ns}}}RelayOutputs", {"token": token})
            props = sub(relay, "tt:Properties")
            sub(props, "tt:Mode", "Bistable")
            sub(props, "tt:DelayTime", "PT0S")
            sub(props, "tt:IdleState", "open")
        return out

    async def _set_relay_output_state(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        token = child_text(soap.operation, "RelayOutputToken") or ""
        state = child_text(soap.operation, "LogicalState") or ""
        if token not in self.relay_state:
            raise _Fault("Sender", "ter:InvalidArgVal", f"no relay output {token!r}")
        if state not in ("active", "inactive"):
            raise _Fault("Sender", "ter:InvalidArgVal", f"bad LogicalState {state!r}")
        self.relay_state[token] = state
        self.relay_history.append(RelayChange(datetime.now(UTC), token, state))
        return ET.Element(f"{{{soap.namespace}}}SetRelayOutputStateResponse")

    # --- Events --------------------------------------------------------------------------

    async def _get_event_properties(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        out = ET.Element(q("tev", "GetEventPropertiesResponse"))
        sub(
            out, "tev:TopicNamespaceLocation", "http://www.onvif.org/onvif/ver10/topics/topicns.xml"
        )
        sub(out, "wsnt:FixedTopicSet", "true")
        topic_set = sub(out, "wstop:TopicSet")
        for event_type in EVENT_TYPES.values():
            parent = topic_set
            parts = event_type.topic.split(":", 1)[1].split("/")
            for i, part in enumerate(parts):
                existing = parent.find(f"{{{TNS1}}}{part}")
                if existing is None:
                    existing = ET.SubElement(parent, f"{{{TNS1}}}{part}")
                    if i == len(parts) - 1:
                        existing.set(q("wstop", "topic"), "true")
                parent = existing
        sub(out, "wsnt:TopicExpressionDialect", TOPIC_DIALECT)
        sub(
            out,
            "wsnt:TopicExpressionDialect",
            "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete",
        )
        sub(
            out,
            "tev:MessageContentFilterDialect",
            "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter",
        )
        sub(
            out,
            "tev:MessageContentSchemaLocation",
            "http://www.onvif.org/onvif/ver10/schema/onvif.xsd",
        )
        return out

    def _initialised_messages(self) -> list[_Message]:
        now = self.now()
        messages = []
        for (topic, source), active in self._properties.items():
            event_type = next(e for e in EVENT_TYPES.values() if e.topic == topic)
            items = ((event_type.source_items[0][0], source), *event_type.source_items[1:])
            value = "true" if active else "false"
            messages.append(
                _Message(topic, items, (event_type.data_item, value), now, "Initialized")
            )
        return messages

    async def _create_pull_point_subscription(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        if "subscription_loss" in self.faults:
            raise _Fault("Receiver", "ter:Action", "event service unavailable")
        now = self.now()
        try:
            termination = parse_termination(
                child_text(soap.operation, "InitialTerminationTime"), now, timedelta(minutes=10)
            )
        except ValueError as exc:
            raise _Fault("Sender", "ter:InvalidArgVal", str(exc)) from exc
        sid = secrets.token_hex(8)
        subscription = _Subscription(sid, termination)
        # Like real cameras, a new subscription first reports the current state of every
        # property, so a client can resynchronise after losing its previous subscription.
        subscription.queue.extend(self._initialised_messages())
        self._subs[sid] = subscription
        self.subscriptions_created += 1
        out = ET.Element(q("tev", "CreatePullPointSubscriptionResponse"))
        reference = sub(out, "tev:SubscriptionReference")
        sub(reference, "wsa:Address", f"http://{self._host(request)}{SUBSCRIPTION_PATH}{sid}")
        sub(out, "wsnt:CurrentTime", self._time(now))
        sub(out, "wsnt:TerminationTime", self._time(termination))
        return out

    def _subscription(self, request: web.Request) -> _Subscription:
        sid = (
            request.path.removeprefix(SUBSCRIPTION_PATH)
            if request.path.startswith(SUBSCRIPTION_PATH)
            else ""
        )
        subscription = self._subs.get(sid)
        if subscription is None:
            raise _Fault("Sender", "ter:InvalidArgVal", "no such subscription")
        if subscription.termination < self.now():
            del self._subs[sid]
            raise _Fault("Sender", "ter:InvalidArgVal", "subscription expired")
        return subscription

    async def _pull_messages(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        subscription = self._subscription(request)
        subscription.pulls += 1
        try:
            timeout = parse_duration(child_text(soap.operation, "Timeout") or "PT0S")
            limit = int(child_text(soap.operation, "MessageLimit") or "1")
        except ValueError as exc:
            raise _Fault("Sender", "ter:InvalidArgVal", str(exc)) from exc
        wait_s = min(timeout.total_seconds(), self.config.max_pull_timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not subscription.queue and not subscription.dropped and not self._closing:
            subscription.wakeup.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await subscription.wakeup.wait()
        if subscription.dropped:
            raise _Fault("Sender", "ter:InvalidArgVal", "subscription no longer exists")
        messages = [
            subscription.queue.popleft() for _ in range(min(limit, len(subscription.queue)))
        ]
        now = self.now()
        out = ET.Element(q("tev", "PullMessagesResponse"))
        sub(out, "tev:CurrentTime", self._time(now))
        sub(out, "tev:TerminationTime", self._time(subscription.termination))
        suffix = "//." if "topic_suffix" in self.faults else ""
        for message in messages:
            holder = sub(out, "wsnt:NotificationMessage")
            topic = sub(holder, "wsnt:Topic", message.topic + suffix, Dialect=TOPIC_DIALECT)
            # The topic is a QName path in text: declare its prefix where it is used.
            topic.set("xmlns:tns1", TNS1)
            wrapper = sub(holder, "wsnt:Message")
            body = sub(
                wrapper,
                "tt:Message",
                UtcTime=self._time(message.at),
                PropertyOperation=message.operation,
            )
            source = sub(body, "tt:Source")
            for name, value in message.source:
                sub(source, "tt:SimpleItem", Name=name, Value=value)
            data = sub(body, "tt:Data")
            sub(data, "tt:SimpleItem", Name=message.data[0], Value=message.data[1])
        return out

    async def _renew(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        subscription = self._subscription(request)
        now = self.now()
        try:
            subscription.termination = parse_termination(
                child_text(soap.operation, "TerminationTime"), now, timedelta(minutes=10)
            )
        except ValueError as exc:
            raise _Fault("Sender", "ter:InvalidArgVal", str(exc)) from exc
        subscription.renewals += 1
        out = ET.Element(q("wsnt", "RenewResponse"))
        sub(out, "wsnt:TerminationTime", self._time(subscription.termination))
        sub(out, "wsnt:CurrentTime", self._time(now))
        return out

    async def _unsubscribe(self, soap: SoapRequest, request: web.Request) -> ET.Element:
        subscription = self._subscription(request)
        subscription.dropped = True
        subscription.wakeup.set()
        del self._subs[subscription.sid]
        return ET.Element(q("wsnt", "UnsubscribeResponse"))

    async def _set_synchronization_point(
        self, soap: SoapRequest, request: web.Request
    ) -> ET.Element:
        subscription = self._subscription(request)
        subscription.queue.extend(self._initialised_messages())
        subscription.wakeup.set()
        return ET.Element(q("tev", "SetSynchronizationPointResponse"))

    # --- snapshot and MJPEG ------------------------------------------------------------------

    def _http_authorised(self, request: web.Request) -> bool:
        # Digest only, as cameras ship: Basic would send the password in the clear.
        if "auth_failure" in self.faults:
            return False
        return self.digest.check(request.method, request.headers.get("Authorization", ""))

    def _challenge(self) -> web.Response:
        self.auth_rejections += 1
        return web.Response(status=401, headers={"WWW-Authenticate": self.digest.challenge()})

    def _apply_scene_faults(self) -> None:
        self._jpegs.clear()
        if self._scene is not None:
            self._scene.faults.clear()
            self._scene.faults.update(self.faults & set(VIDEO_FAULTS))

    async def _frame(self, t: float | None = None) -> bytes:
        """The picture at scene time ``t`` seconds (now if None) as a JPEG."""
        if self._scene is None:
            self._scene = await asyncio.to_thread(_make_scene, self.config)
            self._apply_scene_faults()
        if t is None:
            t = asyncio.get_running_loop().time() - self._started_at
        loop_frames = self.config.jpeg_loop
        if loop_frames <= 0:
            return await asyncio.to_thread(self._scene.jpeg, t)
        fps = max(self.config.fps, 1)
        slot = int(t * fps) % loop_frames
        jpeg = self._jpegs.get(slot)
        if jpeg is None:
            jpeg = await asyncio.to_thread(self._scene.jpeg, slot / fps)
            self._jpegs[slot] = jpeg
        return jpeg

    async def _snapshot(self, request: web.Request) -> web.Response:
        if not self._http_authorised(request):
            return self._challenge()
        self.calls["snapshot"] += 1
        return web.Response(body=await self._frame(), content_type="image/jpeg")

    async def _mjpeg(self, request: web.Request) -> web.StreamResponse:
        if not self._http_authorised(request):
            return self._challenge()
        self.calls["mjpeg"] += 1
        stream = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={_BOUNDARY}"}
        )
        await stream.prepare(request)
        period = 1.0 / max(self.config.fps, 1)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        first = next_at - self._started_at
        n = 0
        try:
            while not self._closing and "offline" not in self.faults:
                # Frame n shows the scene n periods after the first, as an encoder's clock
                # ticks: a stream running late never sends the same picture twice.
                frame = await self._frame(first + n * period)
                n += 1
                await stream.write(
                    f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(frame)}\r\n\r\n".encode()
                    + frame
                    + b"\r\n"
                )
                next_at = max(next_at + period, loop.time())
                await asyncio.sleep(next_at - loop.time())
        except ConnectionError:
            log.debug("%s: MJPEG client went away", self.config.name)
        return stream

    # --- control API ---------------------------------------------------------------------

    async def _sim_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _sim_faults(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            self.set_faults(
                payload.get("set", []),
                payload.get("clear", []),
                slow_s=_opt_float(payload.get("slow_s")),
                clock_drift_s=_opt_float(payload.get("clock_drift_s")),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state())

    async def _sim_events(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            kind = str(payload["kind"])
            if kind not in EVENT_TYPES:
                raise ValueError(f"unknown event kind {kind!r}; known: {sorted(EVENT_TYPES)}")
            source = payload.get("source")
            count = int(payload.get("count", 0))
            if count > 0:
                self.burst(kind, count, source=source)
            else:
                self.emit(kind, bool(payload.get("active", True)), source=source)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state())


_SOAP_HEADERS = {"Content-Type": SOAP_CONTENT_TYPE}
_BOUNDARY = "mallsimframe"


async def _stream(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _opt_float(value: object) -> float | None:
    return None if value is None else float(str(value))


class CameraFarm:
    """N simulated cameras in one process, started and stopped together.

    >>> async with CameraFarm.uniform(3, username="u", password="p") as farm:
    ...     farm[0].port, farm[0].set_faults(["offline"])
    """

    def __init__(self, configs: Sequence[CameraConfig]) -> None:
        self.cameras = [SimCamera(config) for config in configs]

    @classmethod
    def uniform(
        cls,
        count: int,
        *,
        username: str,
        password: str,
        host: str = "127.0.0.1",
        base_port: int = 0,
        rtsp_base_port: int = 0,
        name_prefix: str = "cam",
        faults: Iterable[str] = (),
        **overrides: Any,
    ) -> CameraFarm:
        """``count`` alike cameras; ports ``base_port + i`` and ``rtsp_base_port + i`` (or
        all chosen by the OS where 0)."""
        fault_set = frozenset(faults)
        configs = [
            CameraConfig(
                name=f"{name_prefix}{i + 1:03d}",
                username=username,
                password=password,
                host=host,
                port=base_port + i if base_port else 0,
                rtsp_port=rtsp_base_port + i if rtsp_base_port else 0,
                faults=fault_set,
                seed=i,
                **overrides,
            )
            for i in range(count)
        ]
        return cls(configs)

    def __len__(self) -> int:
        return len(self.cameras)

    def __getitem__(self, index: int) -> SimCamera:
        return self.cameras[index]

    def __iter__(self) -> Iterator[SimCamera]:
        return iter(self.cameras)

    async def __aenter__(self) -> Self:
        started: list[SimCamera] = []
        try:
            for camera in self.cameras:
                await camera.start()
                started.append(camera)
        except BaseException:
            for camera in started:
                await camera.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.gather(*(camera.stop() for camera in self.cameras))


# --- command line ----------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``mallsim camera``."""
    parser.add_argument("--count", type=int, default=1, help="number of cameras (default 1)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="first ONVIF/HTTP port; cameras use consecutive ports (0: any)",
    )
    parser.add_argument(
        "--rtsp-base-port",
        type=int,
        default=0,
        help="first RTSP port; cameras use consecutive ports (0: any)",
    )
    parser.add_argument("--user", required=True, help="ONVIF / HTTP / RTSP username")
    parser.add_argument(
        "--password-env",
        required=True,
        metavar="VAR",
        help="name of the environment variable holding the password (never on the command line)",
    )
    parser.add_argument("--name-prefix", default="cam", help="camera names: PREFIX001, ...")
    parser.add_argument("--resolution", default="1920x1080", help="main stream WIDTHxHEIGHT")
    parser.add_argument("--sub-resolution", default="640x360", help="sub-stream WIDTHxHEIGHT")
    parser.add_argument("--codec", choices=("h264", "h265"), default="h264", help="main stream")
    parser.add_argument("--sub-codec", choices=("h264", "h265"), default="h264", help="sub-stream")
    parser.add_argument("--fps", type=int, default=25, help="frame rate of both streams")
    parser.add_argument(
        "--faults",
        default="",
        help=f"comma-separated faults at start: {', '.join(ALL_FAULTS)}",
    )
    parser.add_argument("--slow-s", type=float, default=5.0, help="delay of the 'slow' fault")
    parser.add_argument("--clock-drift-s", type=float, default=0.0, help="offset of 'clock_drift'")
    parser.add_argument(
        "--low-fps", type=int, default=10, help="pictures a second sent with 'low_fps' (10)"
    )
    parser.add_argument(
        "--no-keyframe-s",
        type=float,
        default=10.0,
        help="seconds between key frames with 'no_keyframe' (10)",
    )
    parser.add_argument(
        "--stall-after-s",
        type=float,
        default=0.0,
        help="seconds of video a session gets before 'stall' stops it (0)",
    )
    parser.add_argument(
        "--jpeg-loop",
        type=int,
        default=0,
        metavar="N",
        help="serve a loop of N frames encoded once, like a hardware encoder (0: encode each)",
    )


def _size(text: str, option: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x", 1))
    except ValueError:
        raise ValueError(f"{option} must look like 1920x1080, got {text!r}") from None
    if not (64 <= width <= 4096 and 48 <= height <= 2160) or width % 2 or height % 2:
        raise ValueError(f"{option}: {text} is not an even size from 64x48 to 4096x2160")
    return width, height


async def run(args: argparse.Namespace) -> int:
    """Run ``--count`` cameras until interrupted; prints one line per camera."""
    password = os.environ.get(args.password_env)
    if not password:
        log.error("environment variable %s is not set: no default credentials", args.password_env)
        return 2
    faults = [f.strip() for f in str(args.faults).split(",") if f.strip()]
    unknown = set(faults) - set(ALL_FAULTS)
    if unknown:
        log.error("unknown faults %s; known: %s", sorted(unknown), ", ".join(ALL_FAULTS))
        return 2
    try:
        width, height = _size(str(args.resolution), "--resolution")
        sub_width, sub_height = _size(str(args.sub_resolution), "--sub-resolution")
        if not 1 <= args.fps <= 60 or not 1 <= args.low_fps <= 60:
            raise ValueError("--fps and --low-fps must be from 1 to 60")
        if args.no_keyframe_s <= 0 or args.no_keyframe_s > 60 or args.stall_after_s < 0:
            raise ValueError("--no-keyframe-s must be in (0, 60] and --stall-after-s >= 0")
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    farm = CameraFarm.uniform(
        args.count,
        username=args.user,
        password=password,
        host=args.host,
        base_port=args.base_port,
        rtsp_base_port=args.rtsp_base_port,
        name_prefix=args.name_prefix,
        faults=faults,
        width=width,
        height=height,
        sub_width=sub_width,
        sub_height=sub_height,
        encoding=str(args.codec).upper(),
        sub_encoding=str(args.sub_codec).upper(),
        fps=args.fps,
        slow_s=args.slow_s,
        clock_drift_s=args.clock_drift_s,
        low_fps=args.low_fps,
        no_keyframe_s=args.no_keyframe_s,
        stall_after_s=args.stall_after_s,
        jpeg_loop=max(0, args.jpeg_loop),
    )
    try:
        async with farm:
            if len(farm):
                # Every camera shows the same loops: encode them before anyone asks.
                await farm[0].video_ready()
            for camera in farm:
                print(
                    f"{camera.config.name}\t{camera.base_url}/onvif/device_service\t"
                    f"{camera.rtsp_url('Profile_1')}\tcontrol {camera.base_url}/sim/state",
                    flush=True,
                )
            await asyncio.Event().wait()
    except OSError as exc:
        log.error("cannot start the cameras: %s", exc)
        return 1
    return 0


__all__ = [
    "ALL_FAULTS",
    "DEVICE_FAULTS",
    "EVENT_TYPES",
    "HOSTILE_FAULTS",
    "QUIRKS",
    "STREAM_FAULTS",
    "VIDEO_FAULTS",
    "CameraConfig",
    "CameraFarm",
    "PresetCall",
    "RelayChange",
    "SimCamera",
    "configure_parser",
    "run",
]
