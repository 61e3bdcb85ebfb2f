"""Video checks run in a pool of their own: at most ``health.video_concurrency`` at once,
and a full video pool does not hold up the camera probes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.app import Hub
from hub.broker import LocalMosquitto
from hub.health.service import HealthService
from hub.health.video import VideoOutcome, VideoProbe
from simulators.camera import CameraFarm
from tests.health.mall import MANUAL, USER, camera_entry, health
from tests.support.sites import make_site
from tests.support.wait import wait_until

CAMS = [f"cam-{i}" for i in range(4)]


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def farm(password: str) -> AsyncIterator[CameraFarm]:
    async with CameraFarm.uniform(len(CAMS), username=USER, password=password) as f:
        yield f


async def test_video_checks_respect_their_own_concurrency(
    broker: LocalMosquitto,
    tmp_path: Path,
    farm: CameraFarm,
    password: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = asyncio.Event()
    running = peak = 0
    checked: list[str] = []
    real_run = VideoProbe.run

    async def held_run(self: VideoProbe, *args: Any, **kwargs: Any) -> VideoOutcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await gate.wait()
            return await real_run(self, *args, **kwargs)
        finally:
            running -= 1
            checked.append(self.device_id)

    monkeypatch.setattr(VideoProbe, "run", held_run)
    cfg = make_site(
        broker_url=broker.url,
        data_dir=tmp_path,
        cameras=[camera_entry(c, farm[i], password) for i, c in enumerate(CAMS)],
        # The checks are held in the hub's own process, where the test can hold them.
        health=health(**MANUAL, video_concurrency=2, camera_worker="inline"),
    )
    async with Hub(cfg) as hub:
        h = hub.health
        assert isinstance(h, HealthService)
        await h.probe_now(CAMS)  # every camera answered: its video check is queued
        await wait_until(lambda: running == 2, what="two video checks in flight")
        # The video pool is full; camera probes still run at once.
        async with asyncio.timeout(10):
            states = await h.probe_now(CAMS)
        assert [s["state"] for s in states] == ["online"] * len(CAMS)
        assert running == 2 and checked == []
        gate.set()
        await wait_until(
            lambda: all(h._cameras[c].last_video is not None for c in CAMS),
            what="every camera's video checked",
        )
        assert peak == 2 and sorted(checked) == CAMS
