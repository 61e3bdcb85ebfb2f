"""Fixtures: simulated cameras on port 0 and the real driver connected to them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from adapters.device_event import DeviceEvent
from adapters.onvif.driver import OnvifCamera
from simulators.camera import CameraFarm, SimCamera

USER = "operator"


@pytest.fixture
def password() -> str:
    # Generated per test: the simulator has no default credentials and neither do tests.
    return secrets.token_urlsafe(12)


@pytest.fixture
async def sim(password: str) -> AsyncIterator[SimCamera]:
    async with CameraFarm.uniform(1, username=USER, password=password) as farm:
        yield farm[0]


def make_camera(sim: SimCamera, password: str, **kwargs: object) -> OnvifCamera:
    options: dict[str, object] = {"timeout_s": 5.0, "connect_timeout_s": 10.0}
    options.update(kwargs)
    return OnvifCamera(
        f"cam-{sim.config.name}",
        "127.0.0.1",
        sim.port,
        USER,
        password,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def camera(sim: SimCamera, password: str) -> AsyncIterator[OnvifCamera]:
    async with make_camera(sim, password) as cam:
        yield cam


class Collector:
    """An ``IngestFn`` that records events and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: DeviceEvent) -> str:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()
        return f"event-{len(self.events)}"

    async def wait_for(
        self, predicate: Callable[[list[DeviceEvent]], bool], within_s: float = 10.0
    ) -> list[DeviceEvent]:
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: predicate(self.events))
        return self.events


@pytest.fixture
def collector() -> Collector:
    return Collector()
