"""Fixtures: simulated gate cameras and a broadcast controller on port 0."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from simulators.broadcast import BroadcastSimulator
from simulators.camera import CameraFarm
from tests.linkage.site import CAMERA_USER


@pytest.fixture
def camera_password() -> str:
    # Generated per test: the simulators have no default credentials and neither do tests.
    return secrets.token_urlsafe(12)


@pytest.fixture
async def farm(camera_password: str) -> AsyncIterator[CameraFarm]:
    # 720p main streams: their snapshots (about 150 kB) travel inline in police messages.
    async with CameraFarm.uniform(
        2,
        username=CAMERA_USER,
        password=camera_password,
        name_prefix="gate",
        width=1280,
        height=720,
    ) as f:
        yield f


@pytest.fixture
async def pa() -> AsyncIterator[BroadcastSimulator]:
    async with BroadcastSimulator(zones=("1", "2", "3")) as sim:
        yield sim
