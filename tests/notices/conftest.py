from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from simulators.camera import CameraFarm
from tests.health.mall import USER


@pytest.fixture
def camera_password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def farm(camera_password: str) -> AsyncIterator[CameraFarm]:
    async with CameraFarm.uniform(2, username=USER, password=camera_password) as f:
        yield f
