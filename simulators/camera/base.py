"""The shared state of a simulated camera, and the helpers all of its services use."""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, Self

from aiohttp import web

from simulators.camera.digest import DigestGuard
from simulators.camera.model import (
    EVENT_TYPES,
    CameraConfig,
    PresetCall,
    RelayChange,
    Subscription,
)
from simulators.camera.rtsp_server import RtspServer
from simulators.onvif_soap import (
    SoapRequest,
    format_datetime,
)

log = logging.getLogger(__name__)


Handler = Callable[[SoapRequest, web.Request], Awaitable[ET.Element]]
"""An ONVIF operation: the parsed request and the HTTP request in, the answer element out."""


class Renderer(Protocol):
    """A camera picture: ``simulators.scene.Scene`` or a plain stand-in."""

    faults: set[str]

    def jpeg(self, t: float, quality: int = 80) -> bytes: ...


class CameraBase:
    """The state every part of a simulated camera shares, and the helpers they all use."""

    rtsp: RtspServer
    """Set by ``SimCamera``, which is what the server streams for."""

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
        self._subs: dict[str, Subscription] = {}
        self._properties: dict[tuple[str, str], bool] = {}
        self.digest = DigestGuard(config.username, config.password)
        self._running = False
        self._scene: Renderer | None = None
        self._jpegs: dict[int, bytes] = {}
        """Loop slot → encoded frame, with ``jpeg_loop``."""
        self._closing = False
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._started_at = 0.0
        self._runner: web.AppRunner | None = None
        self.port = config.port
        self._ops: dict[str, Handler] = {}
        for event_type in EVENT_TYPES.values():
            if event_type is not EVENT_TYPES["vendor_unknown"]:
                self._properties[(event_type.topic, event_type.source_items[0][1])] = False

    def now(self) -> datetime:
        """The camera's own clock (drifted when the ``clock_drift`` fault is set)."""
        drift = self.clock_drift_s if "clock_drift" in self.faults else 0.0
        return datetime.now(UTC) + timedelta(seconds=drift)

    async def wait_for(self, predicate: Callable[[Self], bool]) -> None:
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
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs.values())

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
