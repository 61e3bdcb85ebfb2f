"""The camera simulator's RTSP streams as a third-party client sees them: FFmpeg's ffprobe
opens the main and sub-stream, H.264 and H.265, over TCP and UDP, with Digest credentials,
and finds 25 pictures a second by the stream's timestamps, delivered at their pace."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from simulators.camera import CameraFarm, SimCamera

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")

USER = "installer"
WINDOW_S = 4.0


@dataclass
class Probe:
    returncode: int
    stderr: str
    streams: list[dict[str, object]]
    pts: list[float]
    timed_keys: list[bool]
    first_key: bool
    elapsed_s: float


async def ffprobe(url: str, transport: str, *, window_s: float = WINDOW_S) -> Probe:
    """ffprobe's view of ``window_s`` seconds (by the stream's timestamps) of ``url``."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "ffprobe",
        "-v",
        "error",
        "-rtsp_transport",
        transport,
        "-timeout",
        "10000000",  # socket I/O time-out: 10 s in microseconds
        "-read_intervals",
        f"%+{window_s}",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,width,height:packet=pts_time,flags",
        "-of",
        "json",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    elapsed = time.monotonic() - started
    data = json.loads(out or b"{}")
    packets = data.get("packets", [])
    # FFmpeg gives the very first packet of an RTSP session no timestamp ("N/A").
    timed = [p for p in packets if p.get("pts_time", "N/A") != "N/A"]
    return Probe(
        returncode=proc.returncode or 0,
        stderr=err.decode(errors="replace"),
        streams=data.get("streams", []),
        pts=[float(p["pts_time"]) for p in timed],
        timed_keys=[str(p.get("flags", "")).startswith("K") for p in timed],
        first_key=bool(packets) and str(packets[0].get("flags", "")).startswith("K"),
        elapsed_s=elapsed,
    )


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def camera(request: pytest.FixtureRequest, password: str) -> AsyncIterator[SimCamera]:
    codec = getattr(request, "param", "H264")
    async with CameraFarm.uniform(
        1, username=USER, password=password, encoding=codec, sub_encoding=codec
    ) as farm:
        # Encode (or load from the cache) before the client's clock starts.
        await farm[0].video_ready()
        yield farm[0]


CASES = [
    # (codec, profile, transport, width, height): each value meets each other at least once.
    ("H264", "Profile_1", "tcp", 1920, 1080),
    ("H264", "Profile_2", "udp", 640, 360),
    ("H265", "Profile_1", "udp", 1920, 1080),
    ("H265", "Profile_2", "tcp", 640, 360),
]


@pytest.mark.parametrize(
    ("camera", "profile", "transport", "width", "height"),
    [pytest.param(c, p, t, w, h, id=f"{c}-{p}-{t}") for c, p, t, w, h in CASES],
    indirect=["camera"],
)
async def test_ffprobe_counts_25_fps_on_every_stream(
    camera: SimCamera, password: str, profile: str, transport: str, width: int, height: int
) -> None:
    url = camera.rtsp_url(profile, credentials=True)
    probe = await ffprobe(url, transport)
    assert probe.returncode == 0, probe.stderr
    codec = camera.declared(profile)[0]
    assert probe.streams == [
        {"codec_name": {"H264": "h264", "H265": "hevc"}[codec], "width": width, "height": height}
    ]
    # By the stream's own timestamps: 25 ± 1 pictures a second over the window.
    first = probe.pts[0]
    in_window = [t for t in probe.pts if first <= t < first + WINDOW_S]
    assert abs(len(in_window) / WINDOW_S - 25) <= 1, len(in_window)
    steps = {round(b - a, 3) for a, b in itertools.pairwise(probe.pts)}
    assert steps == {0.04}
    # A session starts at a key frame; a GOP is 2 s.
    assert probe.first_key
    key_times = [t for t, k in zip(probe.pts, probe.timed_keys, strict=True) if k]
    assert [round(b - a, 2) for a, b in itertools.pairwise(key_times)][:1] == [2.0]
    # Paced by the clock, not sent in a burst: 4 s of pictures take 4 s to arrive.
    assert probe.elapsed_s >= WINDOW_S * 0.95


async def test_ffprobe_without_credentials_gets_401(camera: SimCamera, password: str) -> None:
    probe = await ffprobe(camera.rtsp_url("Profile_1"), "tcp", window_s=1)
    assert probe.returncode != 0
    assert "401" in probe.stderr
    wrong = camera.rtsp_url("Profile_1").replace("rtsp://", f"rtsp://{USER}:wrong@")
    probe = await ffprobe(wrong, "tcp", window_s=1)
    assert probe.returncode != 0
    assert "401" in probe.stderr
    assert camera.rtsp.sessions == {}
