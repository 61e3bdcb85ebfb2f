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

from simulators.camera.cli import configure_parser, run
from simulators.camera.device import SimCamera
from simulators.camera.farm import CameraFarm
from simulators.camera.model import (
    ALL_FAULTS,
    DEVICE_FAULTS,
    EVENT_TYPES,
    HOSTILE_FAULTS,
    QUIRKS,
    STREAM_FAULTS,
    VIDEO_FAULTS,
    CameraConfig,
    PresetCall,
    RelayChange,
)

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
