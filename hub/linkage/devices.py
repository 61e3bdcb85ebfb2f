"""Connections the linkage keeps to cameras and broadcast controllers.

Connecting to an ONVIF camera costs several round trips (clock, services, device information)
and, the first time in a process, parsing WSDL documents; an alarm must not wait for that.
The pools connect lazily, keep what they learnt (profile tokens, snapshot URI), and can be
warmed at start so the first alarm finds the cameras ready. After a failure a connection is
dropped, and the next attempt (a retry) connects afresh.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp

from adapters.broadcast import BroadcastDriver
from adapters.errors import AdapterError, NotSupported, ProtocolViolation
from adapters.onvif.driver import OnvifCamera

# The snapshot fetch (Digest or Basic, size limit, HTTP status → AdapterError) lives in the
# ONVIF adapter; ``grab_snapshot`` decodes the picture, but evidence must keep the exact bytes.
from adapters.onvif.grab import fetch_snapshot
from hub.config import BroadcastController, Camera
from hub.drivers import broadcast_driver, camera_driver

log = logging.getLogger(__name__)

CAMERA_TIMEOUT_S = 4.0
CAMERA_CONNECT_TIMEOUT_S = 15.0


@dataclass(slots=True)
class _CameraState:
    camera: OnvifCamera
    profile: str | None = None
    ptz_profile: str | None = None
    snapshot_uri: str | None = None


class CameraPool:
    """ONVIF connections to the cameras the linkage rules use. An async context manager."""

    def __init__(self, cameras: dict[str, Camera]) -> None:
        self.configs = cameras
        self._states: dict[str, _CameraState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        states, self._states = self._states, {}
        for state in states.values():
            await state.camera.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _config(self, camera_id: str) -> Camera:
        cfg = self.configs.get(camera_id)
        if cfg is None:
            raise NotSupported(camera_id, "not a configured camera")
        return cfg

    async def _state(self, camera_id: str) -> _CameraState:
        lock = self._locks.setdefault(camera_id, asyncio.Lock())
        async with lock:
            state = self._states.get(camera_id)
            if state is not None and state.camera.connected and state.profile is not None:
                return state
            cfg = self._config(camera_id)
            camera = camera_driver(
                cfg, CAMERA_TIMEOUT_S, connect_timeout_s=CAMERA_CONNECT_TIMEOUT_S
            )
            try:
                await camera.connect()
                profiles = await camera.get_profiles()
                if not profiles:
                    raise ProtocolViolation(camera_id, "the camera has no media profile")
                state = _CameraState(camera, profile=profiles[0].token)
                state.ptz_profile = next((p.token for p in profiles if p.has_ptz), None)
            except BaseException:
                await camera.close()
                raise
            old = self._states.get(camera_id)
            self._states[camera_id] = state
        if old is not None:
            await old.camera.close()
        return state

    async def warm(self, camera_id: str) -> None:
        """Connect and learn the snapshot URI now; failures only log (alarms retry later)."""
        try:
            state = await self._state(camera_id)
            if state.snapshot_uri is None:
                state.snapshot_uri = await state.camera.get_snapshot_uri(state.profile or "")
        except AdapterError as exc:
            log.warning("%s: not ready for linkage: %s", camera_id, exc.message)

    async def reset(self, camera_id: str) -> None:
        """Forget the connection after a failure; the next call connects again."""
        state = self._states.pop(camera_id, None)
        if state is not None:
            await state.camera.close()

    async def snapshot(self, camera_id: str) -> bytes:
        """The camera's current picture, as the exact bytes it sent."""
        state = await self._state(camera_id)
        if state.snapshot_uri is None:
            state.snapshot_uri = await state.camera.get_snapshot_uri(state.profile or "")
        if state.snapshot_uri is None:
            raise NotSupported(camera_id, "the camera offers no snapshot URI")
        cfg = self._config(camera_id)
        assert self._session is not None, "CameraPool used outside async with"
        return await fetch_snapshot(
            state.snapshot_uri,
            device_id=camera_id,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            timeout=CAMERA_TIMEOUT_S,
            session=self._session,
        )

    async def goto_preset(self, camera_id: str, preset: str) -> str:
        """Move to a configured preset (by name, or a raw token); returns the token used."""
        cfg = self._config(camera_id)
        token = cfg.ptz_presets.get(preset, preset)
        state = await self._state(camera_id)
        await state.camera.goto_preset(state.ptz_profile or state.profile or "", token)
        return token

    async def ptz_move(self, camera_id: str, pan: float, tilt: float, zoom: float) -> None:
        """Move continuously at these velocities (-1…1, ONVIF's axes); all zero stops."""
        state = await self._state(camera_id)
        token = state.ptz_profile or state.profile or ""
        if pan == tilt == zoom == 0:
            await state.camera.call(
                "ptz", "Stop", {"ProfileToken": token, "PanTilt": True, "Zoom": True}
            )
            return
        velocity = {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}
        await state.camera.call(
            "ptz", "ContinuousMove", {"ProfileToken": token, "Velocity": velocity}
        )

    async def set_relay(self, camera_id: str, relay: str, active: bool) -> None:
        state = await self._state(camera_id)
        await state.camera.set_relay_output(relay, active)


class BroadcastPool:
    """Opened broadcast drivers, one per controller. An async context manager."""

    def __init__(self, controllers: dict[str, BroadcastController]) -> None:
        self.configs = controllers
        self._drivers: dict[str, BroadcastDriver] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        drivers, self._drivers = self._drivers, {}
        for driver in drivers.values():
            try:
                await driver.close()
            except AdapterError as exc:
                log.debug("%s: error while closing: %s", driver.device_id, exc)

    async def driver(self, controller_id: str) -> BroadcastDriver:
        async with self._lock:
            found = self._drivers.get(controller_id)
            if found is not None:
                return found
            cfg = self.configs.get(controller_id)
            if cfg is None:
                raise NotSupported(controller_id, "not a configured broadcast controller")
            driver = broadcast_driver(cfg)
            await driver.open()
            self._drivers[controller_id] = driver
            return driver

    def driver_kind(self, controller_id: str) -> str:
        cfg = self.configs.get(controller_id)
        return cfg.driver if cfg is not None else "?"
