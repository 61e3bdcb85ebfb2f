"""Snapshot and MJPEG over HTTP: the camera's scene rendered as JPEG."""

from __future__ import annotations

import asyncio
import importlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

from aiohttp import web

from simulators.camera.base import CameraBase, Renderer
from simulators.camera.model import (
    VIDEO_FAULTS,
    CameraConfig,
)
from simulators.onvif_soap import (
    SoapRequest,
)

log = logging.getLogger(__name__)


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


def _make_scene(config: CameraConfig) -> Renderer:
    # Imported by name so this module keeps working (with a plain test card) where the
    # scene renderer is absent, and so its optional heavy imports load only on first frame.
    try:
        module = importlib.import_module("simulators.scene")
    except ImportError:
        return _FallbackScene(config.name, config.width, config.height, config.seed)
    scene: Renderer = module.Scene(
        config.name, width=config.width, height=config.height, seed=config.seed
    )
    return scene


_Handler = Callable[[SoapRequest, web.Request], Awaitable[ET.Element]]


class HttpMedia(CameraBase):
    """JPEG snapshots and the MJPEG stream, behind HTTP Digest."""

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


_BOUNDARY = "mallsimframe"
