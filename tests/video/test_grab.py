"""Frame grabbing against a fake camera on port 0 serving the synthetic scene."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from adapters.errors import AuthFailed, DeviceUnreachable, ProtocolViolation
from adapters.onvif.grab import GrabResult, grab_snapshot, grab_stream_frames, shrink_to_width
from adapters.onvif.video import WORK_WIDTH, VideoChecker, faults, learn_baseline
from simulators.scene import Scene

USER, PASSWORD = "admin", "s3cret:pass"
REALM = "fake-camera"
MJPEG_FPS = 10.0
BOUNDARY = "frameboundary"


@dataclass
class FakeCamera:
    scene: Scene
    port: int = 0
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    snapshots: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


CAMERA = web.AppKey("camera", FakeCamera)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _digest_valid(header: str, method: str, cam: FakeCamera) -> bool:
    if not header.lower().startswith("digest "):
        return False
    params = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header[7:])}
    if params.get("username") != USER or params.get("nonce") != cam.nonce:
        return False
    ha1 = _md5(f"{USER}:{REALM}:{PASSWORD}")
    ha2 = _md5(f"{method}:{params.get('uri', '')}")
    if params.get("qop") == "auth":
        expected = _md5(f"{ha1}:{cam.nonce}:{params.get('nc')}:{params.get('cnonce')}:auth:{ha2}")
    else:
        expected = _md5(f"{ha1}:{cam.nonce}:{ha2}")
    return hmac.compare_digest(expected, params.get("response", ""))


async def _jpeg(cam: FakeCamera) -> bytes:
    cam.snapshots += 1
    return await asyncio.to_thread(cam.scene.jpeg, float(cam.snapshots), 80)


async def open_snapshot(request: web.Request) -> web.Response:
    return web.Response(body=await _jpeg(request.app[CAMERA]), content_type="image/jpeg")


async def basic_snapshot(request: web.Request) -> web.Response:
    expected = aiohttp.encode_basic_auth(USER, PASSWORD)
    if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})
    return web.Response(body=await _jpeg(request.app[CAMERA]), content_type="image/jpeg")


async def digest_snapshot(request: web.Request) -> web.Response:
    cam = request.app[CAMERA]
    if not _digest_valid(request.headers.get("Authorization", ""), request.method, cam):
        challenge = f'Digest realm="{REALM}", qop="auth", nonce="{cam.nonce}", algorithm=MD5'
        # Cameras often offer Basic as well; Digest comes first, so Digest must be used.
        raise web.HTTPUnauthorized(
            headers=[
                ("WWW-Authenticate", challenge),
                ("WWW-Authenticate", f'Basic realm="{REALM}"'),
            ]
        )
    return web.Response(body=await _jpeg(cam), content_type="image/jpeg")


async def not_an_image(request: web.Request) -> web.Response:
    return web.Response(text="<html>login</html>", content_type="text/html")


async def server_error(request: web.Request) -> web.Response:
    raise web.HTTPServiceUnavailable()


async def hanging(request: web.Request) -> web.Response:
    await request.app[CAMERA].hold.wait()
    return web.Response(text="late")


async def mjpeg(request: web.Request) -> web.StreamResponse:
    cam = request.app[CAMERA]
    resp = web.StreamResponse(
        headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"}
    )
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    try:
        while True:
            t = n / MJPEG_FPS
            data = await asyncio.to_thread(cam.scene.jpeg, 100.0 + t, 80)
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            await resp.write(head + data + b"\r\n")
            n += 1
            # Pace the stream on a fixed schedule, as a camera's encoder does.
            await asyncio.sleep(max(0.0, start + n / MJPEG_FPS - loop.time()))
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    return resp


@pytest.fixture
async def camera() -> AsyncIterator[FakeCamera]:
    cam = FakeCamera(scene=Scene("Fake-Cam-3", 640, 360, seed=3))
    app = web.Application()
    app[CAMERA] = cam
    app.router.add_get("/snapshot.jpg", open_snapshot)
    app.router.add_get("/basic/snapshot.jpg", basic_snapshot)
    app.router.add_get("/digest/snapshot.jpg", digest_snapshot)
    app.router.add_get("/login", not_an_image)
    app.router.add_get("/broken", server_error)
    app.router.add_get("/hang", hanging)
    app.router.add_get("/video.mjpg", mjpeg)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    cam.port = int(runner.addresses[0][1])
    try:
        yield cam
    finally:
        cam.hold.set()
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_snapshot_without_auth(camera: FakeCamera) -> None:
    frame = await grab_snapshot(camera.url("/snapshot.jpg"), device_id="cam-3", timeout=5)
    assert frame.shape == (360, 640, 3) and frame.dtype == np.uint8
    # It is the scene's picture, decoded for real: close to the original render.
    original = camera.scene.render(1.0).astype(np.int16)
    assert float(np.abs(frame.astype(np.int16) - original).mean()) < 6.0


@pytest.mark.parametrize("path", ["/basic/snapshot.jpg", "/digest/snapshot.jpg"])
async def test_snapshot_with_auth(camera: FakeCamera, path: str) -> None:
    frame = await grab_snapshot(
        camera.url(path), device_id="cam-3", username=USER, password=PASSWORD, timeout=5
    )
    assert frame.shape == (360, 640, 3)
    assert camera.snapshots == 1


@pytest.mark.parametrize("path", ["/basic/snapshot.jpg", "/digest/snapshot.jpg"])
async def test_snapshot_wrong_password(camera: FakeCamera, path: str) -> None:
    with pytest.raises(AuthFailed) as info:
        await grab_snapshot(
            camera.url(path), device_id="cam-3", username=USER, password="wrong", timeout=5
        )
    assert info.value.device_id == "cam-3"
    assert "wrong" not in str(info.value)
    assert camera.snapshots == 0


async def test_snapshot_without_credentials_on_protected_camera(camera: FakeCamera) -> None:
    with pytest.raises(AuthFailed):
        await grab_snapshot(camera.url("/digest/snapshot.jpg"), device_id="cam-3", timeout=5)


async def test_snapshot_with_shared_session(camera: FakeCamera) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            await grab_snapshot(
                camera.url("/digest/snapshot.jpg"),
                device_id="cam-3",
                username=USER,
                password=PASSWORD,
                session=session,
            )
    assert camera.snapshots == 2


async def test_snapshot_not_an_image(camera: FakeCamera) -> None:
    with pytest.raises(ProtocolViolation):
        await grab_snapshot(camera.url("/login"), device_id="cam-3", timeout=5)


async def test_snapshot_server_error(camera: FakeCamera) -> None:
    with pytest.raises(DeviceUnreachable):
        await grab_snapshot(camera.url("/broken"), device_id="cam-3", timeout=5)


async def test_snapshot_timeout(camera: FakeCamera) -> None:
    with pytest.raises(DeviceUnreachable, match="no answer"):
        await grab_snapshot(camera.url("/hang"), device_id="cam-3", timeout=0.3)


async def test_snapshot_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}/snapshot.jpg"
    with pytest.raises(DeviceUnreachable):
        await grab_snapshot(url, device_id="cam-9", timeout=5)


async def test_mjpeg_stream_frames_and_rate(camera: FakeCamera) -> None:
    result = await grab_stream_frames(
        camera.url("/video.mjpg"),
        device_id="cam-3",
        n_frames=25,
        duration=20.0,
        open_timeout=10.0,
        read_timeout=5.0,
    )
    assert isinstance(result, GrabResult)
    assert len(result.frames) == 25
    assert (result.width, result.height) == (640, 360)
    assert all(f.shape == (360, 640, 3) for f in result.frames)
    # Real, different frames: people walk between them.
    assert not np.array_equal(result.frames[0], result.frames[-1])
    assert result.fps is not None
    assert result.fps == pytest.approx(MJPEG_FPS, rel=0.2)


async def test_mjpeg_stream_feeds_the_checks(camera: FakeCamera) -> None:
    url = camera.url("/video.mjpg")
    good = await grab_stream_frames(url, device_id="cam-3", n_frames=8, duration=20.0)
    base = await asyncio.to_thread(learn_baseline, good.frames)
    camera.scene.faults.add("blurred")
    bad = await grab_stream_frames(url, device_id="cam-3", n_frames=5, duration=20.0)
    report = await asyncio.to_thread(VideoChecker(base).check_series, bad.frames, bad.timestamps)
    assert {f.check for f in faults(report.findings)} == {"blur"}
    assert report.fps is not None and report.fps > 0


async def test_stream_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}/video.mjpg"
    with pytest.raises(DeviceUnreachable):
        await grab_stream_frames(url, device_id="cam-9", n_frames=2, open_timeout=2.0)


async def test_frames_shrunk_as_read_give_the_same_findings(camera: FakeCamera) -> None:
    # A burst holds small frames when max_width is given; the checks, which look at
    # WORK_WIDTH-wide pictures anyway, must not see any difference.
    full = await grab_stream_frames(camera.url("/video.mjpg"), device_id="cam-3", n_frames=4)
    small = [shrink_to_width(f, WORK_WIDTH) for f in full.frames]
    assert all(f.shape == (180, WORK_WIDTH, 3) for f in small)
    base_full = await asyncio.to_thread(learn_baseline, full.frames)
    base_small = await asyncio.to_thread(learn_baseline, small)
    assert np.array_equal(base_full.reference, base_small.reference)
    assert base_full.stats == base_small.stats
    camera.scene.faults.add("dark")
    bad = await grab_stream_frames(camera.url("/video.mjpg"), device_id="cam-3", n_frames=4)
    report_full = VideoChecker(base_full).check_series(bad.frames)
    report_small = VideoChecker(base_full).check_series(
        [shrink_to_width(f, WORK_WIDTH) for f in bad.frames]
    )
    assert report_full.findings == report_small.findings
    assert {f.check for f in faults(report_small.findings)} == {"dark"}


async def test_stream_and_snapshot_frames_shrunk_to_max_width(camera: FakeCamera) -> None:
    with ThreadPoolExecutor(1) as pool:
        result = await grab_stream_frames(
            camera.url("/video.mjpg"),
            device_id="cam-3",
            n_frames=3,
            max_width=WORK_WIDTH,
            executor=pool,
        )
        snap = await grab_snapshot(
            camera.url("/snapshot.jpg"), device_id="cam-3", max_width=160, executor=pool
        )
    # The size reported is the stream's; the frames held are small.
    assert (result.width, result.height) == (640, 360)
    assert [f.shape for f in result.frames] == [(180, WORK_WIDTH, 3)] * 3
    assert snap.shape == (90, 160, 3)
    narrow = np.zeros((100, 200, 3), np.uint8)
    assert shrink_to_width(narrow, WORK_WIDTH) is narrow  # never enlarged
