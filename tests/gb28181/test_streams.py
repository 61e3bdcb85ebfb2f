"""Live video on demand: INVITE → PS over RTP, decoded by PyAV on the upper platform's side."""

from __future__ import annotations

import asyncio
import secrets
from contextlib import AsyncExitStack

import pytest

from adapters.gb28181.model import Channel, PlatformHooks, StreamSource
from adapters.gb28181.platform import LowerPlatform
from simulators.camera import CameraConfig, CameraFarm
from simulators.gb28181_media import MediaMode, StreamCheck, invite
from simulators.gb28181_platform import UpperPlatform

from ..support.wait import wait_until
from .conftest import HUB_ID, platform_config
from .sources import FFMPEG, Codec, FfmpegSource

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")

CAMERAS = [
    Channel(f"3402000000132{n:07d}", f"cam-{n}", "camera", f"摄像机 {n}") for n in range(1, 7)
]


def hooks(urls: dict[str, str]) -> PlatformHooks:
    async def stream_source(channel: Channel) -> StreamSource | None:
        url = urls.get(channel.device_ref)
        return StreamSource(url) if url else None

    return PlatformHooks(channels=lambda: CAMERAS, stream_source=stream_source)


async def test_four_concurrent_streams_h264_h265_udp_and_tcp(upper: UpperPlatform) -> None:
    plan: list[tuple[Codec, MediaMode]] = [
        ("h264", "udp"),
        ("h265", "udp"),
        ("h264", "tcp-passive"),
        ("h265", "tcp-active"),
    ]
    async with AsyncExitStack() as stack:
        sources = [await stack.enter_async_context(FfmpegSource(codec)) for codec, _ in plan]
        urls = {f"cam-{n}": s.url for n, s in enumerate(sources, start=1)}
        urls["cam-5"] = "http://127.0.0.1:9/never"  # would be a fifth stream
        cfg = platform_config(upper, max_streams=4)
        async with LowerPlatform(cfg, hooks(urls)) as platform:
            await wait_until(lambda: platform.registered, what="registration")
            async with asyncio.TaskGroup() as group:
                plays = [
                    group.create_task(
                        invite(upper, HUB_ID, CAMERAS[n].channel_id, mode=mode, seconds=4.0)
                    )
                    for n, (_, mode) in enumerate(plan)
                ]
                await wait_until(
                    lambda: sum(s.packets > 0 for s in platform.streams.sessions.values()) == 4,
                    within=20,
                    what="4 streams flowing",
                )
                fifth = await invite(upper, HUB_ID, CAMERAS[4].channel_id, seconds=0)
            checks: list[StreamCheck] = [play.result() for play in plays]
        assert (fifth.status, fifth.reason) == (486, "Busy Here (stream limit reached)")
        for (codec, mode), check in zip(plan, checks, strict=True):
            assert check.ok, (codec, mode, check)
            assert check.codec == ("h264" if codec == "h264" else "hevc"), (mode, check)
            assert (check.width, check.height) == (320, 240)
            assert check.frames >= 25, (codec, mode, check)  # at least a second of pictures
        assert platform.streams.counters["ended: BYE"] == 4
        assert platform.streams.counters["refused_486"] == 1
        assert not platform.streams.sessions


async def test_refusals(upper: UpperPlatform) -> None:
    urls = {"cam-1": "http://127.0.0.1:9/unreachable"}
    async with LowerPlatform(platform_config(upper), hooks(urls)) as platform:
        await wait_until(lambda: platform.registered, what="registration")
        unknown = await invite(upper, HUB_ID, "34020000001329999999", seconds=0)
        button = await invite(upper, HUB_ID, "34020000001340000001", seconds=0)
        unreachable = await invite(upper, HUB_ID, CAMERAS[0].channel_id, seconds=0)
        no_source = await invite(upper, HUB_ID, CAMERAS[1].channel_id, seconds=0)
        not_ps = await upper.request(
            HUB_ID,
            "INVITE",
            b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 4000 RTP/AVP 98\r\na=rtpmap:98 H264/90000\r\n",
            [("content-type", "application/sdp")],
            uri_user=CAMERAS[0].channel_id,
        )
    assert unknown.status == 404 and button.status == 404
    assert unreachable.status == 503
    assert no_source.status == 480
    assert not_ps.status == 488 and "PS" in not_ps.start


async def test_four_streams_pulled_over_rtsp_with_digest(upper: UpperPlatform) -> None:
    """The camera simulator's RTSP server (Digest auth, H.264 and H.265 loops) as the source."""
    password = secrets.token_urlsafe(10)
    configs = [
        CameraConfig(f"cam{n}", "admin", password, width=640, height=360, encoding=codec, seed=n)
        for n, codec in enumerate(["H264", "H265", "H264", "H265"], start=1)
    ]
    async with CameraFarm(configs) as farm:
        urls = {f"cam-{n}": cam.rtsp_url(credentials=True) for n, cam in enumerate(farm, start=1)}
        modes: list[MediaMode] = ["udp", "tcp-passive", "tcp-active", "udp"]
        async with LowerPlatform(platform_config(upper, max_streams=4), hooks(urls)) as platform:
            await wait_until(lambda: platform.registered, what="registration")
            async with asyncio.TaskGroup() as group:
                plays = [
                    group.create_task(
                        invite(upper, HUB_ID, CAMERAS[n].channel_id, mode=mode, seconds=4.0)
                    )
                    for n, mode in enumerate(modes)
                ]
        checks = [play.result() for play in plays]
    for config, mode, check in zip(configs, modes, checks, strict=True):
        assert check.ok, (config.encoding, mode, check)
        assert check.codec == ("h264" if config.encoding == "H264" else "hevc")
        assert (check.width, check.height) == (640, 360)
        assert check.frames >= 25, (config.encoding, mode, check)
