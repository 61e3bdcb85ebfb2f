"""Which frame source a camera's video check uses: a failed source is tried last for a
while and then first again; the HTTP stream URI is asked once. Against a simulated camera
(MJPEG and snapshots) and an RTSP port that accepts connections and hangs up at once."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import hub.health.video as video_mod
from adapters.onvif.driver import OnvifCamera
from hub.health.video import VideoOutcome, VideoProbe
from simulators.camera import CameraFarm, SimCamera
from tests.health.mall import USER

RETRY = 2


class HangUp:
    """A TCP port that counts connections and closes each one straight away."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _client(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> HangUp:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"rtsp://127.0.0.1:{port}/main"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def sim(password: str) -> AsyncIterator[SimCamera]:
    async with CameraFarm.uniform(1, username=USER, password=password, width=640, height=360) as f:
        yield f[0]


@pytest.fixture(autouse=True)
def short_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video_mod, "SOURCE_RETRY_CHECKS", RETRY)


async def test_a_failed_rtsp_source_is_skipped_then_retried(sim: SimCamera, password: str) -> None:
    async with (
        HangUp() as rtsp,
        OnvifCamera("cam-1", "127.0.0.1", sim.port, USER, password) as cam,
    ):
        probe = await cam.probe()
        assert probe.error is None and probe.profiles and probe.snapshot_uri
        token = probe.profiles[0].token
        vp = VideoProbe("cam-1", USER, password)
        stream_uri_calls = sim.calls["GetStreamUri"]

        async def check() -> tuple[VideoOutcome, int]:
            before = rtsp.connections
            with ThreadPoolExecutor(1) as pool:
                out = await vp.run(
                    cam, token, rtsp.url, probe.snapshot_uri, within=20, executor=pool
                )
            return out, rtsp.connections - before

        first, tried = await check()
        assert tried > 0 and first.source == "http" and first.error is None
        # The picture came over HTTP, but the main stream was not measured: no rate is
        # made up from another stream, and the reason is kept.
        assert first.fps_measured is None and first.stream_error is not None
        for _ in range(RETRY):
            out, tried = await check()
            assert (out.source, tried) == ("http", 0)  # RTSP not tried again yet
        out, tried = await check()
        assert tried > 0 and out.source == "http"  # tried first once more, still closed
        # The HTTP stream URI was asked for once, not on every check.
        assert sim.calls["GetStreamUri"] - stream_uri_calls == 1


async def test_after_a_stream_failure_snapshots_stand_in_then_the_stream_returns(
    sim: SimCamera, password: str
) -> None:
    async with OnvifCamera("cam-1", "127.0.0.1", sim.port, USER, password) as cam:
        probe = await cam.probe()
        assert probe.profiles and probe.snapshot_uri
        token = probe.profiles[0].token
        vp = VideoProbe("cam-1", USER, password)
        # The stream URI the camera gave earlier no longer answers.
        stale = f"http://127.0.0.1:{closed_port()}/onvif/mjpeg"
        vp.http_uri = ((token, None), stale)

        async def check() -> VideoOutcome:
            return await vp.run(cam, token, None, probe.snapshot_uri, within=20)

        out = await check()
        assert out.source == "snapshot" and out.fps_measured is None and out.error is None
        for _ in range(RETRY):
            assert (await check()).source == "snapshot"
        # Tried first again: with the URI asked afresh it works and measures the rate.
        out = await check()
        assert out.source == "http" and out.fps_measured is not None
        assert vp.http_uri is not None and vp.http_uri[1] != stale
