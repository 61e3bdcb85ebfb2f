"""Every video fault of the camera simulator, as FFmpeg (through PyAV) receives and decodes it
from the RTSP streams, on H.264 and on H.265 — and the healthy stream, judged the same way,
shows none of them."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from adapters.onvif.driver import OnvifCamera
from simulators.camera import CameraFarm, SimCamera

USER = "installer"
CODECS = ["H264", "H265"]
SUB = "Profile_2"  # 640x360: cheap to decode, and what a video check reads


@dataclass
class Capture:
    pts_s: list[float] = field(default_factory=list)
    keys: list[bool] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    luma: list[NDArray[np.float32]] = field(default_factory=list)
    declared_fps: float = 0.0
    error: str = ""

    def after(self, skip_s: float) -> Capture:
        """The part of the capture that arrived ``skip_s`` after the first packet (past the
        burst FFmpeg buffers while opening a stream)."""
        t0 = self.arrivals[0] + skip_s
        keep = [i for i, t in enumerate(self.arrivals) if t >= t0]
        return Capture(
            [self.pts_s[i] for i in keep],
            [self.keys[i] for i in keep],
            [self.arrivals[i] for i in keep],
            [],
            self.declared_fps,
        )


def capture(
    url: str,
    seconds: float,
    *,
    decode: bool = True,
    timeout_s: float = 10,
    after_frames: tuple[int, Callable[[], object]] | None = None,
) -> Capture:
    """Read ``seconds`` (wall clock, after opening) of ``url`` with PyAV over TCP; call
    ``after_frames[1]`` once ``after_frames[0]`` pictures have been decoded."""
    out = Capture()
    try:
        container = av.open(url, options={"rtsp_transport": "tcp"}, timeout=timeout_s)
    except av.FFmpegError as exc:
        out.error = str(exc)
        return out
    try:
        stream = container.streams.video[0]
        time_base = stream.time_base
        assert time_base is not None
        out.declared_fps = float(stream.average_rate or 0)
        start = time.monotonic()
        for packet in container.demux(stream):
            now = time.monotonic()
            if packet.pts is not None:
                out.pts_s.append(float(packet.pts * time_base))
                out.keys.append(bool(packet.is_keyframe))
                out.arrivals.append(now)
            if decode:
                for frame in packet.decode():
                    out.luma.append(frame.to_ndarray(format="gray").astype(np.float32))
                    if after_frames is not None and len(out.luma) == after_frames[0]:
                        after_frames[1]()
            if now - start >= seconds:
                break
    except av.FFmpegError as exc:
        out.error = str(exc)
    finally:
        container.close()
    return out


def sharpness(frames: list[NDArray[np.float32]]) -> float:
    return float(np.mean([cv2.Laplacian(f, cv2.CV_32F).var() for f in frames]))


def mean_luma(frames: list[NDArray[np.float32]]) -> float:
    return float(np.mean([f.mean() for f in frames]))


def frame_diffs(frames: list[NDArray[np.float32]]) -> list[float]:
    return [float(np.abs(a - b).max()) for a, b in itertools.pairwise(frames)]


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


async def two_cameras(
    password: str, codec: str, fault: str, **config: Any
) -> tuple[CameraFarm, SimCamera, SimCamera]:
    farm = CameraFarm.uniform(
        2, username=USER, password=password, encoding=codec, sub_encoding=codec, **config
    )
    await farm.__aenter__()
    healthy, faulty = farm[0], farm[1]
    faulty.set_faults([fault])
    await asyncio.gather(healthy.video_ready([SUB]), faulty.video_ready([SUB]))
    return farm, healthy, faulty


@pytest.fixture
async def pair(
    request: pytest.FixtureRequest, password: str
) -> AsyncIterator[tuple[SimCamera, SimCamera]]:
    codec, fault = request.param
    farm, healthy, faulty = await two_cameras(password, codec, fault)
    try:
        yield healthy, faulty
    finally:
        await farm.__aexit__(None, None, None)


async def both(healthy: SimCamera, faulty: SimCamera, seconds: float) -> tuple[Capture, Capture]:
    urls = [c.rtsp_url(SUB, credentials=True) for c in (healthy, faulty)]
    good, bad = await asyncio.gather(*(asyncio.to_thread(capture, u, seconds) for u in urls))
    assert not good.error and not bad.error, (good.error, bad.error)
    assert len(good.luma) >= 10 and len(bad.luma) >= 10
    return good, bad


def params(fault: str) -> list[object]:
    return [pytest.param((c, fault), id=f"{c}-{fault}") for c in CODECS]


@pytest.mark.parametrize("pair", params("black"), indirect=True)
async def test_black(pair: tuple[SimCamera, SimCamera]) -> None:
    good, bad = await both(*pair, 1.0)
    assert mean_luma(good.luma) > 80
    assert mean_luma(bad.luma) < 20


@pytest.mark.parametrize("pair", params("covered"), indirect=True)
async def test_covered(pair: tuple[SimCamera, SimCamera]) -> None:
    good, bad = await both(*pair, 1.0)
    dark_good = np.mean([(f < 50).mean() for f in good.luma])
    dark_bad = np.mean([(f < 50).mean() for f in bad.luma])
    assert dark_good < 0.2 < 0.4 < dark_bad
    assert sharpness(bad.luma) < sharpness(good.luma) / 2


@pytest.mark.parametrize("pair", params("blurred"), indirect=True)
async def test_blurred(pair: tuple[SimCamera, SimCamera]) -> None:
    good, bad = await both(*pair, 1.0)
    assert abs(mean_luma(bad.luma) - mean_luma(good.luma)) < 10  # same light, lost detail
    assert sharpness(bad.luma) < sharpness(good.luma) / 3


@pytest.mark.parametrize("pair", params("moved"), indirect=True)
async def test_moved(pair: tuple[SimCamera, SimCamera]) -> None:
    healthy, faulty = pair
    good, bad = await both(healthy, faulty, 1.0)
    again, _ = await both(healthy, healthy, 0.5)
    # Every session starts at the same picture of the loop: the first decoded pictures of two
    # sessions of one healthy camera match; the knocked camera's view does not.
    assert float(np.abs(good.luma[0] - again.luma[0]).mean()) < 2
    assert float(np.abs(good.luma[0] - bad.luma[0]).mean()) > 20
    assert abs(mean_luma(bad.luma) - mean_luma(good.luma)) < 15  # a view, not a light problem


@pytest.mark.parametrize("pair", params("frozen"), indirect=True)
async def test_frozen(pair: tuple[SimCamera, SimCamera]) -> None:
    healthy, faulty = pair
    good, bad = await both(healthy, faulty, 2.5)  # across a loop seam (GOP 2 s)
    assert max(frame_diffs(bad.luma)) == 0  # the very same picture, pixel for pixel
    assert min(frame_diffs(good.luma)) > 0
    # ... while the stream keeps running at its rate, through the seam.
    assert {round(b - a, 3) for a, b in itertools.pairwise(bad.pts_s)} == {0.04}
    assert bad.pts_s[-1] - bad.pts_s[0] >= 2.0


@pytest.mark.parametrize("codec", CODECS)
async def test_low_fps_sends_10_while_25_is_declared(password: str, codec: str) -> None:
    farm, healthy, faulty = await two_cameras(password, codec, "low_fps")
    try:
        urls = [c.rtsp_url(SUB, credentials=True) for c in (healthy, faulty)]
        good, bad = await asyncio.gather(
            *(asyncio.to_thread(capture, u, 3.0, decode=False) for u in urls)
        )
        async with OnvifCamera(
            "cam", "127.0.0.1", faulty.port, USER, faulty.config.password
        ) as onvif:
            profiles = await onvif.get_profiles()
    finally:
        await farm.__aexit__(None, None, None)
    assert good.declared_fps == bad.declared_fps == 25  # SDP a=framerate
    sub = next(p for p in profiles if p.token == SUB).encoder
    assert sub is not None and sub.fps_limit == 25 and sub.encoding == codec  # ONVIF says 25
    arrival = {}
    for cap, rate in ((good, 25), (bad, 10)):
        steps = {round(b - a, 3) for a, b in itertools.pairwise(cap.pts_s)}
        assert steps == {round(1 / rate, 3)}  # by the stream's timestamps
        tail = cap.after(1.0)  # and by arrival, past the opening burst
        arrival[rate] = (len(tail.pts_s) - 1) / (tail.arrivals[-1] - tail.arrivals[0])
    # Paced, not bursted: 2.5 times as many pictures arrive a second from the healthy
    # camera (compared with each other, so a loaded machine slowing both cannot fail it).
    assert 1.8 <= arrival[25] / arrival[10] <= 3.2, arrival
    assert arrival[10] <= 12, arrival


@pytest.mark.parametrize("codec", CODECS)
async def test_no_keyframe_for_n_seconds(password: str, codec: str) -> None:
    farm, _, faulty = await two_cameras(password, codec, "no_keyframe", no_keyframe_s=3.0)
    try:
        url = faulty.rtsp_url(SUB, credentials=True)
        bad = await asyncio.to_thread(capture, url, 4.5, decode=False)
    finally:
        await farm.__aexit__(None, None, None)
    assert not bad.error
    keys = [t - bad.pts_s[0] for t, k in zip(bad.pts_s, bad.keys, strict=True) if k]
    # The session starts just after a key frame: the next comes 3 s of pictures later.
    assert keys and 2.9 <= keys[0] <= 3.0
    assert not any(bad.keys[: int(2.5 * 25)])


@pytest.mark.parametrize("codec", CODECS)
async def test_stall_after_play(password: str, codec: str) -> None:
    farm, _, faulty = await two_cameras(password, codec, "stall", stall_after_s=1.0)
    try:
        url = faulty.rtsp_url(SUB, credentials=True)
        bad = await asyncio.to_thread(capture, url, 6.0, decode=False, timeout_s=2.0)
    finally:
        await farm.__aexit__(None, None, None)
    # About a second of pictures, then silence until the client's read time-out gave up.
    assert bad.error, "the read should have timed out"
    assert 10 <= len(bad.pts_s) <= 1.5 * 25


@pytest.mark.parametrize("codec", CODECS)
async def test_picture_faults_also_show_on_the_main_stream(password: str, codec: str) -> None:
    async with CameraFarm.uniform(
        1, username=USER, password=password, encoding=codec, faults=["black"]
    ) as farm:
        await farm[0].video_ready()
        url = farm[0].rtsp_url("Profile_1", credentials=True)
        main = await asyncio.to_thread(capture, url, 0.5)
    assert not main.error
    assert main.luma[0].shape == (1080, 1920)
    assert mean_luma(main.luma) < 20


async def test_rtsp_unauthorized_and_unavailable_and_refused(password: str) -> None:
    async with CameraFarm.uniform(1, username=USER, password=password) as farm:
        cam = farm[0]
        await cam.video_ready([SUB])
        url = cam.rtsp_url(SUB, credentials=True)
        cam.set_faults(["rtsp_unauthorized"])
        denied = await asyncio.to_thread(capture, url, 0.5)
        assert "401" in denied.error or "authoriz" in denied.error.lower()
        cam.set_faults(["rtsp_unavailable"], clear=["rtsp_unauthorized"])
        busy = await asyncio.to_thread(capture, url, 0.5)
        assert busy.error and not busy.pts_s
        cam.set_faults(["rtsp_refused"], clear=["rtsp_unavailable"])
        await cam.rtsp.settled()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", cam.rtsp_port)
        cam.set_faults(clear=["rtsp_refused"])
        await cam.rtsp.settled()
        back = await asyncio.to_thread(capture, url, 0.5, decode=False)
        assert not back.error and back.pts_s  # the same port serves again


async def test_encoder_mismatch_streams_what_onvif_does_not_say(password: str) -> None:
    async with CameraFarm.uniform(
        1, username=USER, password=password, faults=["encoder_mismatch"]
    ) as farm:
        cam = farm[0]
        await cam.video_ready([SUB])
        onvif = OnvifCamera("cam", "127.0.0.1", cam.port, USER, password)
        async with onvif:
            profiles = await onvif.get_profiles()
        url = cam.rtsp_url(SUB, credentials=True)
        seen = await asyncio.to_thread(capture, url, 0.5)
        container = await asyncio.to_thread(
            av.open, url, options={"rtsp_transport": "tcp"}, timeout=10
        )
        try:
            codec = container.streams.video[0].codec_context.name
        finally:
            container.close()
    claimed = next(p for p in profiles if p.token == SUB).encoder
    assert claimed is not None
    assert (claimed.encoding, claimed.width, claimed.height) == ("H264", 640, 360)
    assert codec == "hevc"
    assert seen.luma[0].shape == (240, 426)


@pytest.mark.parametrize("codec", CODECS)
async def test_a_fault_switched_on_shows_on_a_running_session(password: str, codec: str) -> None:
    async with CameraFarm.uniform(1, username=USER, password=password, sub_encoding=codec) as farm:
        cam = farm[0]
        cam.set_faults(["black"])
        await cam.video_ready([SUB])
        cam.set_faults(clear=["black"])
        await cam.video_ready([SUB])
        url = cam.rtsp_url(SUB, credentials=True)
        loop = asyncio.get_running_loop()

        def switch() -> None:
            loop.call_soon_threadsafe(cam.set_faults, ["black"])

        seen = await asyncio.to_thread(capture, url, 3.0, after_frames=(20, switch))
    assert not seen.error
    levels = [float(f.mean()) for f in seen.luma]
    assert levels[0] > 80 and levels[-1] < 20  # the same session, from a key frame on
    turned = next(i for i, v in enumerate(levels) if v < 20)
    assert turned >= 20 and all(v > 80 for v in levels[:turned])
