"""Fault names, event types and the configuration and records of a simulated camera."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from simulators.onvif_soap import (
    NS,
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
    "encoder_mismatch",  # streams in the other codec at 2/3 the size ONVIF reports
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
class Message:
    topic: str
    source: tuple[tuple[str, str], ...]
    data: tuple[str, str]
    at: datetime
    operation: str


@dataclass(slots=True)
class Subscription:
    sid: str
    termination: datetime
    queue: deque[Message] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False
    renewals: int = 0
    pulls: int = 0


class SoapFault(Exception):
    def __init__(self, code: str, subcode: str | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason
